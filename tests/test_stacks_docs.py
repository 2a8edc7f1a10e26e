"""The trainer-stack pages say what the code does: the TensorBoard tags, the pages CI links to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers.integrations.integration_utils import rewrite_logs  # noqa: E402

from hardmine.event import MiningEvent  # noqa: E402

STACKS = Path(__file__).resolve().parents[1] / "docs" / "stacks"


def test_the_tensorboard_tags_are_the_ones_transformers_writes() -> None:
    """transformers' TensorBoard callback passes every training log through rewrite_logs (adds `train/`)."""
    event = MiningEvent(epoch=1, triggered=True, num_hard=4, score_cut=2.5, num_seen=40, num_observed=40,
                        draw_ratio=3.0, mined_draws=12, total_draws=40)
    written = set(rewrite_logs(event.scalars()))
    text = (STACKS / "hf_trainer.md").read_text(encoding="utf-8")
    section = text[text.index("**TensorBoard tags"):]
    documented = set(re.findall(r"`(train/hardmine/[a-z_]+)`", section))
    assert written == documented, (sorted(written), sorted(documented))


@pytest.mark.parametrize("page", ["hf_trainer", "trl", "ms_swift", "deepspeed"])
def test_every_stack_has_a_page_with_a_recipe(page: str) -> None:
    text = (STACKS / f"{page}.md").read_text(encoding="utf-8")
    assert "## Recipe" in text and "```python" in text and "## Tests" in text
