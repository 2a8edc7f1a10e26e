"""A mined ms-swift run on 2 gloo CPU ranks (launched by tests/swift/test_ms_swift.py via torchrun).

usage: python -m torch.distributed.run --nproc_per_node=2 tests/swift/dist_swift_train.py OUT ddp MODEL_DIR
Each rank writes OUT/ddp_rank<r>.json: the indices its dataset was asked for, each epoch's plan, the history.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path


def main(out: Path, mode: str, model_dir: str | None) -> None:
    import hardmine.distributed as hd
    from tests.swift.swift_tiny import build_trainer

    assert model_dir is not None
    trainer = build_trainer(Path(model_dir), out / mode, ddp_backend="gloo")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    result = {
        "world_size": hd.get_world_size(),
        "reads": trainer.train_dataset.reads,
        "plans": [(draws.tolist(), hard.tolist()) for draws, hard in trainer.plans],
        "history": [e.to_dict() for e in trainer.miner.history],
        "warnings": [str(w.message) for w in caught if "hardmine" in str(w.message)],
    }
    (out / f"{mode}_rank{hd.get_rank()}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.torchrun import run_rank

    run_rank(main)
