"""HardMiningTrainer end to end on tiny offline models: stock gradients, ids, packing, metrics, bad input."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from hardmine import HardMiningSampler  # noqa: E402
from hardmine.integrations.hf import (  # noqa: E402
    HardMiningTrainer,
    HardMiningTrainerMixin,
    HardSampleMiningCallback,
)
from tests.hf_tiny import (  # noqa: E402
    TokenDataset,
    VLDataset,
    stack_collate,
    tiny_args,
    tiny_qwen3,
    tiny_qwen3_vl,
    vl_collate,
)

pytestmark = pytest.mark.slow
NEVER = {"trigger": {"kind": "epoch", "start_epoch": 99}}
EARLY = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 4}}


def _args(tmp_path: Path, **kw: Any) -> TrainingArguments:
    base: dict[str, Any] = dict(per_device_train_batch_size=4, num_train_epochs=1, save_strategy="no", logging_steps=1)
    return tiny_args(tmp_path, **{**base, **kw})


class GradRecorder(TrainerCallback):
    """Every gradient, at every optimizer step."""

    def __init__(self) -> None:
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> None:
        self.grads.append(
            {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        )


class SameOrderTrainer(Trainer):
    """The stock Trainer fed the same order as an un-triggered miner, so batches match step for step."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return HardMiningSampler(len(self.train_dataset), seed=self.args.seed)


def _losses(trainer: Trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("kind", ["qwen3", "qwen3_vl"])
@pytest.mark.parametrize("loss_kwargs", [True, False], ids=["num_items_in_batch", "token_mean"])
def test_loss_and_every_gradient_equal_stock(tmp_path: Path, kind: str, loss_kwargs: bool) -> None:
    if kind == "qwen3":
        model, data, collate = tiny_qwen3(), TokenDataset(16), stack_collate
    else:
        model, data, collate = tiny_qwen3_vl(), VLDataset(16), vl_collate
    runs = []
    for cls, extra in ((SameOrderTrainer, {}), (HardMiningTrainer, {"mining": NEVER})):
        rec = GradRecorder()
        trainer = cls(
            model=copy.deepcopy(model),
            args=_args(
                tmp_path,
                gradient_accumulation_steps=2,
                per_device_train_batch_size=2,
                remove_unused_columns=False,
            ),
            train_dataset=data,
            data_collator=collate,
            callbacks=[rec],
            **extra,
        )
        trainer.model_accepts_loss_kwargs = loss_kwargs  # Qwen3: True by default; Qwen3-VL: False
        trainer.train()
        runs.append((trainer, rec))
    (stock, stock_rec), (ours, our_rec) = runs
    assert len(stock_rec.grads) == len(our_rec.grads) == 4
    for g_stock, g_ours in zip(stock_rec.grads, our_rec.grads):
        assert g_stock.keys() == g_ours.keys()
        for name in g_stock:
            assert torch.equal(g_stock[name], g_ours[name]), name
    np.testing.assert_allclose(_losses(ours), _losses(stock), rtol=1e-6)
    assert ours.miner is not None and ours.miner.pending == 0 and ours.miner.history[-1].num_observed == 16


def test_disabled_is_the_stock_trainer_bit_for_bit(tmp_path: Path) -> None:
    model = tiny_qwen3()
    stock = Trainer(
        model=copy.deepcopy(model),
        args=_args(tmp_path, num_train_epochs=2),
        train_dataset=TokenDataset(16),
        data_collator=stack_collate,
    )
    off = HardMiningTrainer(
        model=copy.deepcopy(model),
        args=_args(tmp_path, num_train_epochs=2),
        train_dataset=TokenDataset(16),
        data_collator=stack_collate,
        mining={"enabled": False},
    )
    assert type(off._get_train_sampler()) is type(stock._get_train_sampler())
    assert not any(isinstance(cb, HardSampleMiningCallback) for cb in off.callback_handler.callbacks)
    assert "_loss_function" not in vars(off.model)
    stock.train()
    off.train()
    assert _losses(off) == _losses(stock)
    for (n, a), (_, b) in zip(stock.model.named_parameters(), off.model.named_parameters()):
        assert torch.equal(a, b), n
    assert off.miner is not None and off.miner.pending == 0 and len(off.miner.ledger) == 0


def test_sample_ids_survive_remove_unused_columns_without_peeking(tmp_path: Path) -> None:
    ids = [100 + i // 2 for i in range(16)]  # augmented pairs share one logical id
    data = TokenDataset(16, sample_ids=ids, extra=True)  # "caption" is a str: must be stripped
    trainer = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path, num_train_epochs=2),
        train_dataset=data,
        data_collator=stack_collate,
        mining=EARLY,
    )
    trainer.get_train_dataloader()
    assert data.reads == []  # never reads an item outside the DataLoader's fetches
    trainer.train()
    assert len(data.reads) == 32  # exactly the sampler's draws: 16 per epoch
    miner = trainer.miner
    assert miner is not None and miner.id_space.kind == "mapped"
    seen, scores = miner.ledger.scores()
    assert seen.tolist() == sorted(set(ids)) and np.isfinite(scores).all()
    assert set(miner.hard_ids.tolist()) <= set(ids) and miner.hard_ids.size == 4
    assert "sample_id" not in (trainer._signature_columns or [])  # evaluation keeps the stock columns


def test_hf_datasets_path_keeps_sample_id(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = TokenDataset(12)
    ds = datasets.Dataset.from_dict(
        {
            "input_ids": rows.x.tolist(),
            "labels": rows.x.tolist(),
            "sample_id": [7 * i for i in range(12)],
            "caption": ["x"] * 12,
        }
    )
    ds.set_format("torch")
    trainer = HardMiningTrainer(
        model=tiny_qwen3(), args=_args(tmp_path), train_dataset=ds, data_collator=stack_collate, mining=NEVER
    )
    trainer.train()
    assert trainer.miner is not None and trainer.miner.ledger.scores()[0].tolist() == [
        7 * i for i in range(12)
    ]


def test_packed_rows_credit_each_sample(tmp_path: Path) -> None:
    from transformers import DataCollatorWithFlattening

    model = tiny_qwen3()
    model.config.use_cache = False  # packed sdpa masks are built only without a cache
    scores = []
    for collate in (stack_collate, DataCollatorWithFlattening()):
        trainer = HardMiningTrainer(
            model=copy.deepcopy(model),
            args=_args(tmp_path, learning_rate=0.0),
            train_dataset=TokenDataset(12),
            data_collator=collate,
            mining=NEVER,
        )
        trainer.train()
        assert trainer.miner is not None
        scores.append(trainer.miner.ledger.scores())
    (ids_a, a), (ids_b, b) = scores
    assert ids_a.tolist() == ids_b.tolist() == list(range(12))
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_plateau_trigger_monitors_the_epoch_eval_metric(tmp_path: Path) -> None:
    maps = iter([0.30, 0.30, 0.30])

    def compute_metrics(_: Any) -> dict[str, float]:
        return {"map": next(maps)}

    trainer = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path, num_train_epochs=3, eval_strategy="epoch"),
        train_dataset=TokenDataset(8),
        eval_dataset=TokenDataset(4, seed=1),
        data_collator=stack_collate,
        compute_metrics=compute_metrics,
        mining={"trigger": {"kind": "plateau", "monitor": "eval_map", "mode": "max", "patience": 1},
                "guard": {"cartography": {"warmup": 4}}},  # an untrained model's flat losses: none judged yet
    )
    trainer.train()
    history = trainer.miner.history  # type: ignore[union-attr]
    assert [e.metric for e in history] == [0.30, 0.30, 0.30]  # each epoch's own evaluation
    assert [e.triggered for e in history] == [False, False, True]
    logged = [h for h in trainer.state.log_history if "hardmine/triggered" in h]
    assert [h["hardmine/triggered"] for h in logged] == [0.0, 0.0, 1.0]
    assert all("hardmine/num_hard" in h for h in logged) and "hardmine/score_cut" in logged[-1]


def test_per_sample_loss_fn_for_a_non_token_head(tmp_path: Path) -> None:
    class Detector(torch.nn.Module):
        """A stand-in detection head: loss = mean squared box error."""

        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(4, 4)

        def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
            pred = self.head(features)
            return {"loss": ((pred - boxes) ** 2).mean(), "pred": pred}

    class Boxes(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"features": torch.full((4,), float(i)), "boxes": torch.zeros(4)}

    def per_sample(outputs: Any, inputs: Any) -> torch.Tensor:
        return ((outputs["pred"] - inputs["boxes"]) ** 2).mean(dim=1)

    trainer = HardMiningTrainer(
        model=Detector(),
        args=_args(tmp_path, learning_rate=0.0, label_names=["boxes"]),
        train_dataset=Boxes(),
        data_collator=stack_collate,
        mining=NEVER,
        per_sample_loss_fn=per_sample,
    )
    trainer.train()
    ids, scores = trainer.miner.ledger.scores()  # type: ignore[union-attr]
    assert ids.tolist() == list(range(8)) and np.argsort(scores).tolist() == list(range(8))


class _NoLogits(torch.nn.Module):
    """A causal LM behind a fused loss: the loss comes back, the logits do not (Liger, TRL chunked_nll)."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = tiny_qwen3()

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.lm.lm_head

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, output_hidden_states: bool = False
    ) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        out = self.lm(input_ids=input_ids, labels=labels, output_hidden_states=output_hidden_states)
        return CausalLMOutputWithPast(loss=out.loss, logits=None, hidden_states=out.hidden_states)


def test_logits_none_recomputes_from_hidden_states_or_says_what_to_change(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class ChunkedArgs(TrainingArguments):
        loss_type: str = "chunked_nll"  # as TRL's SFTConfig spells it

    trainer = HardMiningTrainer(
        model=_NoLogits(),
        args=_args(tmp_path, learning_rate=0.0),
        train_dataset=TokenDataset(8),
        data_collator=stack_collate,
        mining=NEVER,
    )
    with pytest.raises(ValueError, match="use_liger_kernel"):
        trainer.train()
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        learning_rate=0.0,
        disable_tqdm=True,
    )
    fused = HardMiningTrainer(
        model=_NoLogits(),
        args=ChunkedArgs(**base),
        train_dataset=TokenDataset(8),
        data_collator=stack_collate,
        mining=NEVER,
    )
    fused.train()
    plain = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path, learning_rate=0.0),
        train_dataset=TokenDataset(8),
        data_collator=stack_collate,
        mining=NEVER,
    )
    plain.train()
    np.testing.assert_allclose(fused.miner.ledger.scores()[1], plain.miner.ledger.scores()[1], rtol=1e-5)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- bad input
def test_missing_labels_is_a_clear_error(tmp_path: Path) -> None:
    class NoLabels(TokenDataset):
        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.x[i]}

    trainer = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path),
        train_dataset=NoLabels(8),
        data_collator=stack_collate,
        mining=NEVER,
    )
    with pytest.raises(ValueError, match="no 'labels'.*per_sample_loss_fn"):
        trainer.train()


def test_all_masked_rows_are_skipped_and_counted_never_nan(tmp_path: Path) -> None:
    trainer = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path),
        train_dataset=TokenDataset(8, masked=(2, 5)),
        data_collator=stack_collate,
        mining=EARLY,
    )
    trainer.train()
    miner = trainer.miner
    assert miner is not None
    ids, scores = miner.ledger.scores()
    assert np.isfinite(scores).all() and 2 not in ids and 5 not in ids
    assert miner.history[-1].num_skipped == 2 and miner.history[-1].num_observed == 8
    assert not set(miner.hard_ids.tolist()) & {2, 5}


def test_collator_that_drops_sample_id_is_a_clear_error(tmp_path: Path) -> None:
    class OwnLoader(HardMiningTrainer):
        def get_train_dataloader(self) -> Any:  # bypasses the adapter's collator
            return self.accelerator.prepare(
                torch.utils.data.DataLoader(self.train_dataset, batch_size=4, collate_fn=stack_collate)
            )

    trainer = OwnLoader(
        model=tiny_qwen3(),
        args=_args(tmp_path),
        train_dataset=TokenDataset(8),
        data_collator=stack_collate,
        mining=NEVER,
    )
    with pytest.raises(ValueError, match="no 'sample_id'.*get_train_dataloader"):
        trainer.train()


def test_mining_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HardMiningTrainer(
            model=tiny_qwen3(),
            args=_args(tmp_path),
            train_dataset=TokenDataset(4),
            mining=str(tmp_path / "nope.yaml"),
        )


def test_yaml_block_and_mixin_on_any_trainer_subclass(tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "model: tiny\ncustom:\n  hard_sample_mining:\n    enabled: true\n    trigger: {kind: epoch, "
        "start_epoch: 0}\n    select: {kind: top_k, k: 3}\n"
    )

    class UserTrainer(Trainer):  # stands in for TRL's SFTTrainer or an ms-swift trainer
        pass

    class Mined(HardMiningTrainerMixin, UserTrainer):
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Mined(
            model=tiny_qwen3(),
            args=_args(tmp_path, train_sampling_strategy="group_by_length"),
            train_dataset=TokenDataset(8),
            data_collator=stack_collate,
            mining=str(cfg),
        )
    assert sum("train_sampling_strategy" in str(w.message) for w in caught) == 1
    trainer.train()
    assert trainer.miner is not None and trainer.miner.hard_ids.size == 3
    assert isinstance(trainer._get_train_sampler(), HardMiningSampler)


def test_fusion_dataset_train_set(tmp_path: Path) -> None:
    from hardmine.fusion import FusionDataset

    fusion = FusionDataset(
        targets={"bbu": TokenDataset(12)}, auxiliaries={"lvis": (TokenDataset(20, seed=5), 0.5)}
    )
    trainer = HardMiningTrainer(
        model=tiny_qwen3(),
        args=_args(tmp_path, num_train_epochs=2),
        train_dataset=fusion,
        data_collator=stack_collate,
        mining=EARLY,
    )
    trainer.train()
    miner = trainer.miner
    assert miner is not None and len(miner.sampler) == 12 + 6
    assert trainer.state.global_step == 2 * 5  # ceil(18 / 4) steps, both epochs: the length never moved
    sources, _ = fusion.decode_many(miner.hard_ids)
    assert miner.hard_ids.size == 4 and set(np.asarray(sources).tolist()) == {"bbu"}  # only targets are mined
    logged = [h for h in trainer.state.log_history if "hardmine/num_hard" in h][-1]
    assert logged["hardmine/source/lvis"] == 6 and logged["hardmine/source/bbu"] == 12


def test_categories_from_a_list_or_a_dataset_column_give_the_prior(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = TokenDataset(12)
    cats = [[0]] * 9 + [[0, 1]] * 3  # three rows hold the rare category 1
    ds = datasets.Dataset.from_dict({"input_ids": rows.x.tolist(), "labels": rows.x.tolist(),
                                     "objects": [{"category": c} for c in cats]})
    ds.set_format("torch", columns=["input_ids", "labels"])  # the categories are never collated
    by_column = HardMiningTrainer(model=tiny_qwen3(), args=_args(tmp_path), train_dataset=ds,
                                  data_collator=stack_collate, mining=NEVER, categories="objects.category")
    by_list = HardMiningTrainer(model=tiny_qwen3(), args=_args(tmp_path), train_dataset=ds,
                                data_collator=stack_collate, mining=NEVER, categories=cats)
    for trainer in (by_column, by_list):
        assert trainer.miner is not None
        weights = trainer.miner.sampler.weights
        assert weights is not None and weights[:9].tolist() == [1.0] * 9 and bool((weights[9:] > 1).all())
    by_column.train()
    event = by_column.miner.history[-1]
    assert event.prior_boosted == 3 and event.prior_boost_share == 1.0
