"""Sample ids through the Trainer's data pipeline, without ever reading an item outside a fetch.

:class:`IndexedDataset` tags each item with its dataset index inside the DataLoader's own fetch;
:class:`SampleIdCollator` strips the tags (and any ``sample_id``) before the user's collator and adds
them back as LongTensors; :func:`pop_sample_ids` takes them out of the batch before ``model(**inputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

SAMPLE_ID = "sample_id"
INDEX_KEY = "hardmine_index"
OWN_IDS_KEY = "hardmine_own_ids"
BATCH_KEYS = (SAMPLE_ID, INDEX_KEY, OWN_IDS_KEY)


class IndexedDataset(Dataset):  # type: ignore[type-arg]
    """A view of ``dataset`` whose items also carry their index under :data:`INDEX_KEY`.

    Anything else (``decode``, ``sources``, ...) is forwarded to the wrapped dataset.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, Mapping):
            raise TypeError(
                f"hardmine: dataset item {index} is a {type(item).__name__}; mining needs dict-like items "
                "(a 'sample_id' key is optional). Return a dict from __getitem__."
            )
        return {**item, INDEX_KEY: int(index)}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """Batched fetch (torch calls it when present): the wrapped dataset's own, when it has one."""
        fetch = getattr(self.dataset, "__getitems__", None)
        if fetch is None:
            return [self[i] for i in indices]
        items = fetch(indices)
        for i, item in zip(indices, items):
            if not isinstance(item, Mapping):
                raise TypeError(f"hardmine: dataset item {i} is a {type(item).__name__}; mining needs dicts.")
        return [{**item, INDEX_KEY: int(i)} for i, item in zip(indices, items)]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset" or name.startswith("__"):  # unpickling, or protocols: never forwarded
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SampleIdCollator:
    """Wraps any collator: items lose ``sample_id`` and the index tag, the batch gains them as tensors.

    ``batch["sample_id"]`` is a flat LongTensor of logical ids in row-major order (an item holding a
    packed row may carry a list of ids); ``batch[INDEX_KEY]`` the dataset index of each id;
    ``batch[OWN_IDS_KEY]`` whether the ids came from the items (True) or are the indices (False).
    """

    def __init__(self, collate_fn: Callable[[list[Any]], Any]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        index = np.fromiter((f.pop(INDEX_KEY) for f in features), dtype=np.int64, count=len(features))
        own = [f.pop(SAMPLE_ID, None) for f in features]
        missing = [i for i, x in zip(index.tolist(), own) if x is None]
        if missing and len(missing) != len(own):
            raise ValueError(
                f"hardmine: some items carry 'sample_id' and others do not (no id at dataset indices "
                f"{missing[:5]}). Give every item a 'sample_id' or none (the dataset index is used)."
            )
        batch = self.collate_fn(features)
        if not isinstance(batch, MutableMapping):
            raise TypeError(
                f"hardmine: the data collator returned a {type(batch).__name__}; mining needs a dict batch "
                "so it can carry 'sample_id'."
            )
        if missing:
            ids, idx, has_own = index, index, False
        else:
            counts = np.fromiter((np.asarray(x).size for x in own), dtype=np.int64, count=len(own))
            ids, idx, has_own = _flatten_ids(own), np.repeat(index, counts), True
        batch[SAMPLE_ID] = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        batch[INDEX_KEY] = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        batch[OWN_IDS_KEY] = has_own  # a plain bool: reading it never syncs a device
        return batch


def _flatten_ids(own: Sequence[Any]) -> np.ndarray:
    """Item ids (ints, or lists of ints for items that are packed rows) as one flat int64 array."""
    try:
        parts = [np.asarray(x).reshape(-1) for x in own]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"hardmine: 'sample_id' must be an int or a list of ints per item; got {own[:3]!r}."
        ) from err
    if flat.size and not np.issubdtype(flat.dtype, np.integer) and not np.all(np.mod(flat, 1) == 0):
        raise ValueError(f"hardmine: 'sample_id' values must be integers; got {flat[:5].tolist()}.")
    return flat.astype(np.int64)


@dataclass(frozen=True)
class BatchIds:
    """The ids popped from one batch: logical ids, dataset indices (None when unknown), and their origin."""

    ids: torch.Tensor
    indices: torch.Tensor | None
    own: bool


def pop_sample_ids(inputs: dict[str, Any]) -> BatchIds | None:
    """Remove the hardmine keys from ``inputs``; None when the batch carries no ``sample_id``.

    A batch built by another collator may carry ``sample_id`` alone (a LongTensor or per-row lists):
    then the ids are taken as the items' own and the indices are unknown.
    """
    ids = inputs.pop(SAMPLE_ID, None)
    indices = inputs.pop(INDEX_KEY, None)
    own = inputs.pop(OWN_IDS_KEY, None)
    if ids is None:
        return None
    if isinstance(ids, (list, tuple)) and ids and all(torch.is_tensor(x) for x in ids):
        ids = torch.cat([x.reshape(-1) for x in ids])  # per-row id tensors of a packing collator
    elif not torch.is_tensor(ids):
        ids = torch.from_numpy(_flatten_ids(ids if isinstance(ids, (list, tuple)) else [ids]))
    return BatchIds(
        ids=ids.reshape(-1).long(),
        indices=None if indices is None else indices.reshape(-1).long(),
        own=True if own is None else bool(own),
    )
