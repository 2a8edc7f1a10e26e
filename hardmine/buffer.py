"""The per-rank record buffer: what ``miner.record`` collects between two epoch ends, and the gather.

Lists and arrays are checked when they are added. Tensors stay where they are, detached, until
``flush_every`` blocks are buffered, then cross to the host in one copy and are checked: recording a
training step never synchronises an accelerator. ``gather`` is the epoch's one collective pair; the buffer's
state knows which rank each pending record belongs to, so a checkpoint holds every rank's records in one
file and each rank takes its own share back on resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine import distributed
from hardmine._state import check_state, stamp
from hardmine._validation import as_id_array, as_loss_array, joined

__all__ = ["RecordBuffer", "Records"]

Check = Callable[[np.ndarray, "np.ndarray | None"], None]
_STATE_VERSION = 1
_NO_INDEX = -1


@dataclass(frozen=True)
class Records:
    """``(id, loss, dataset index)`` records in recording order; ``indices`` is None when no record had one."""

    ids: np.ndarray
    losses: np.ndarray
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.size)

    def mean_loss(self) -> float | None:
        """The mean of the finite losses (None when there is none)."""
        finite = np.isfinite(self.losses)
        if finite.all():  # the usual case: the mean of the losses themselves, without a filtered copy
            return float(self.losses.mean()) if self.losses.size else None
        kept = self.losses[finite]
        return float(kept.mean()) if kept.size else None


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device") and hasattr(x, "numel")


class RecordBuffer:
    """Pending records of this rank.

    Args:
        check: called with each host block ``(ids, indices or None)``; raises ValueError to refuse it.
        flush_every: tensor blocks kept where they are before one host copy.

    >>> buf = RecordBuffer()
    >>> buf.add([3, 1], [0.5, 2.0]); len(buf)
    2
    >>> buf.gather().ids.tolist(), len(buf)
    ([3, 1], 0)
    """

    def __init__(self, check: Check | None = None, flush_every: int = 16) -> None:
        self.check = check
        self.flush_every = int(flush_every)
        self._ids: list[np.ndarray] = []
        self._losses: list[np.ndarray] = []
        self._indices: list[np.ndarray | None] = []
        self._device: list[tuple[Any, Any, Any]] = []  # (ids, losses, indices or None) tensors, not yet copied

    def __len__(self) -> int:
        return sum(a.size for a in self._ids) + sum(int(b[0].numel()) for b in self._device)

    # ------------------------------------------------------------------ adding
    def add(self, ids: Any, losses: Any, indices: Any = None) -> None:
        """Buffer one block of records (lists, arrays or tensors); a refused block changes nothing."""
        if _is_tensor(losses) and _is_tensor(ids) and (indices is None or _is_tensor(indices)):
            if ids.numel() != losses.numel():
                raise ValueError(f"ids and losses must have the same length, but got {ids.numel()} ids and "
                                 f"{losses.numel()} losses")
            self._device.append((ids.detach().reshape(-1).long(), losses.detach().reshape(-1).float(),
                                 None if indices is None else indices.detach().reshape(-1).long()))
            if len(self._device) >= self.flush_every:
                self.flush()
            return
        self.flush()  # keep recording order
        self._add_host(ids, losses, indices)

    def _add_host(self, ids: Any, losses: Any, indices: Any) -> None:
        ids_a, losses_a = as_id_array(ids, "ids"), as_loss_array(losses, "losses")
        if ids_a.size != losses_a.size:
            raise ValueError(f"ids and losses must have the same length, but got {ids_a.size} ids and "
                             f"{losses_a.size} losses")
        idx = None if indices is None else as_id_array(indices, "indices")
        if idx is not None and idx.size != ids_a.size:
            raise ValueError(f"indices and ids must have the same length, but got {idx.size} indices and "
                             f"{ids_a.size} ids")
        if self.check is not None:
            self.check(ids_a, idx)
        if ids_a.size:
            self._ids.append(ids_a)
            self._losses.append(losses_a)
            self._indices.append(idx)

    def flush(self) -> None:
        """Copy the buffered tensor blocks to the host in one transfer, and check them."""
        if not self._device:
            return
        import torch

        blocks, self._device = self._device, []
        ids = torch.cat([b[0] for b in blocks])
        losses = torch.cat([b[1] for b in blocks])
        indices = None
        if any(b[2] is not None and b[2].numel() for b in blocks):  # an empty block's indices are no record's
            indices = torch.cat([torch.full_like(b[0], _NO_INDEX) if b[2] is None else b[2] for b in blocks])
        host = torch.stack([ids, losses.double().view(torch.int64)] + ([] if indices is None else [indices])).cpu()
        self._add_host(host[0].numpy(), host[1].view(torch.float64).numpy().astype(np.float32),
                       None if indices is None else host[2].numpy())

    # ------------------------------------------------------------------ reading
    def local(self) -> Records:
        """This rank's pending records as single arrays (they stay pending)."""
        self.flush()
        ids = joined(self._ids, np.int64)
        losses = joined(self._losses, np.float32)
        if all(i is None for i in self._indices):
            return Records(ids, losses, None)
        parts = [np.full(a.size, _NO_INDEX, np.int64) if i is None else i for a, i in zip(self._ids, self._indices)]
        indices = joined(parts, np.int64)
        return Records(ids, losses, None if bool(np.all(indices < 0)) else indices)

    def clear(self) -> None:
        self._ids, self._losses, self._indices, self._device = [], [], [], []

    def gather(self) -> Records:
        """Every rank's pending records in rank order, and an empty buffer. A collective: call it on every rank."""
        records = self.local()
        self.clear()
        if distributed.get_world_size() == 1:
            return records
        idx = np.full(records.ids.size, _NO_INDEX, np.int64) if records.indices is None else records.indices
        ids, losses, indices = distributed.all_gather_concat([records.ids, records.losses.astype(np.float64), idx])
        return Records(ids, losses, None if bool(np.all(indices < 0)) else indices)

    # ------------------------------------------------------------------ state
    def state_dict(self, all_ranks: bool = False) -> dict[str, Any]:
        """The pending records. ``all_ranks=True`` is a collective that holds every rank's (for a checkpoint
        one process writes); otherwise only this rank's."""
        r = self.local()
        arrays = [r.ids, r.losses.astype(np.float64),
                  np.full(r.ids.size, _NO_INDEX, np.int64) if r.indices is None else r.indices]
        world, rank = distributed.get_world_size(), distributed.get_rank()
        sizes = np.array([r.ids.size], dtype=np.int64)
        ranks = [rank]
        if all_ranks and world > 1:
            arrays, per_rank = distributed.all_gather_concat_sizes(arrays)
            sizes, ranks = np.asarray(per_rank, dtype=np.int64), list(range(world))
        return stamp("RecordBuffer", _STATE_VERSION, world_size=world, ranks=ranks, sizes=sizes,
                     ids=arrays[0], losses=arrays[1], indices=arrays[2])

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take this rank's share of the saved records (all of them to rank 0 when the world size changed)."""
        check_state(state, "RecordBuffer", _STATE_VERSION, ("world_size", "ranks", "sizes", "ids", "losses", "indices"))
        ids, losses, indices = (np.asarray(state[k], dtype) for k, dtype in
                                (("ids", np.int64), ("losses", np.float64), ("indices", np.int64)))
        sizes = np.asarray(state["sizes"], dtype=np.int64)
        ranks = [int(x) for x in state["ranks"]]
        if sizes.size != len(ranks) or int(sizes.sum()) != ids.size or not ids.size == losses.size == indices.size:
            raise ValueError(f"RecordBuffer state is inconsistent: sizes {sizes.tolist()} for ranks {ranks}, "
                             f"{ids.size} ids, {losses.size} losses, {indices.size} indices")
        world, rank = distributed.get_world_size(), distributed.get_rank()
        mine = slice(0, 0)
        if int(state["world_size"]) == world:
            if rank in ranks:
                start = int(sizes[: ranks.index(rank)].sum())
                mine = slice(start, start + int(sizes[ranks.index(rank)]))
        else:
            if ids.size:
                warnings.warn(f"hardmine: the pending losses were saved by {int(state['world_size'])} process(es) "
                              f"and are resumed by {world}; they all go to rank 0 (the folding order can differ "
                              "from an uninterrupted run).", UserWarning, stacklevel=3)
            if rank == 0:
                mine = slice(0, ids.size)
        self.clear()
        part = indices[mine]
        if part.size:
            self._ids, self._losses = [ids[mine].copy()], [losses[mine].copy()]
            self._indices = [None if bool(np.all(part < 0)) else part.copy()]

    def __repr__(self) -> str:
        return f"RecordBuffer(pending={len(self)}, flush_every={self.flush_every})"
