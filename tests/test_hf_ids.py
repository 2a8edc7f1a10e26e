"""Sample ids through the DataLoader: index tags inside the fetch, collation around any collator."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from hardmine.integrations._hf_ids import (
    INDEX_KEY,
    OWN_IDS_KEY,
    IndexedDataset,
    SampleIdCollator,
    pop_sample_ids,
)


class CountingDataset(Dataset):  # type: ignore[type-arg]
    """Records every index read, to prove nothing is read outside the DataLoader's fetches."""

    def __init__(self, n: int, with_ids: bool = False) -> None:
        self.n, self.with_ids, self.reads = n, with_ids, []  # type: ignore[var-annotated]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.reads.append(i)
        item: dict[str, Any] = {"x": torch.tensor([float(i)])}
        if self.with_ids:
            item["sample_id"] = 1000 + i // 2  # augmented variants share a logical id
        return item


def _stack(features: list[dict[str, Any]]) -> dict[str, Any]:
    assert all(set(f) == {"x"} for f in features), "the user collator must see clean items"
    return {"x": torch.stack([f["x"] for f in features])}


@pytest.mark.parametrize("with_ids", [False, True])
def test_ids_and_indices_survive_the_dataloader(with_ids: bool) -> None:
    ds = CountingDataset(10, with_ids=with_ids)
    order = [7, 2, 9, 0, 5]
    loader = DataLoader(IndexedDataset(ds), batch_size=2, sampler=order, collate_fn=SampleIdCollator(_stack))
    seen_ids, seen_idx = [], []
    for batch in loader:
        got = pop_sample_ids(batch)
        assert got is not None and set(batch) == {"x"}
        assert got.own is with_ids and got.ids.dtype == torch.long
        seen_ids += got.ids.tolist()
        seen_idx += got.indices.tolist()  # type: ignore[union-attr]
    assert ds.reads == order  # the adapter read nothing itself
    assert seen_idx == order
    assert seen_ids == ([1000 + i // 2 for i in order] if with_ids else order)


def test_packed_items_give_flat_ids_with_repeated_indices() -> None:
    features = [
        {"x": torch.zeros(1), "sample_id": [4, 5, 6], INDEX_KEY: 0},
        {"x": torch.zeros(1), "sample_id": [9], INDEX_KEY: 1},
    ]
    batch = SampleIdCollator(_stack)(features)
    assert batch["sample_id"].tolist() == [4, 5, 6, 9]
    assert batch[INDEX_KEY].tolist() == [0, 0, 0, 1]
    assert bool(batch[OWN_IDS_KEY])


def test_mixed_ids_are_refused() -> None:
    features = [{"x": torch.zeros(1), "sample_id": 3, INDEX_KEY: 0}, {"x": torch.zeros(1), INDEX_KEY: 1}]
    with pytest.raises(ValueError, match="some items carry 'sample_id'"):
        SampleIdCollator(_stack)(features)


def test_non_dict_items_and_batches_are_refused() -> None:
    with pytest.raises(TypeError, match="dict-like items"):
        IndexedDataset([1, 2, 3])[0]
    with pytest.raises(TypeError, match="needs a dict batch"):
        SampleIdCollator(lambda f: [x["x"] for x in f])([{"x": 1, INDEX_KEY: 0}])


def test_foreign_collator_per_row_lists() -> None:
    batch: dict[str, Any] = {
        "input_ids": torch.zeros(2, 3),
        "sample_id": [torch.tensor([1, 2]), torch.tensor([3])],
    }
    got = pop_sample_ids(batch)
    assert got is not None and got.ids.tolist() == [1, 2, 3] and got.indices is None and got.own
    assert pop_sample_ids({"input_ids": torch.zeros(1)}) is None


def test_view_forwards_attributes_and_pickles() -> None:
    import pickle

    ds = CountingDataset(3)
    view = pickle.loads(pickle.dumps(IndexedDataset(ds)))
    assert len(view) == 3 and view.with_ids is False and view[2][INDEX_KEY] == 2
