"""Arbitrary int64 sample ids -> ledger table slots, for ledgers with no known id range.

Keys are kept sorted (slot = position), so the table reads out in id order. When the ids seen lie in a
compact range (dataset row numbers with an offset, a sample_id column), a direct lookup table over that range
maps an id to its slot in one gather and finds new ids without sorting; otherwise one sort of the batch
and a binary search do it.
"""

from __future__ import annotations

import numpy as np

_LUT_MIN = 1 << 20  # a lookup table this small (4 MiB) is always worth it
_LUT_SPAN = 2  # ... and one of up to this many entries per key (8 bytes a key)


class SparseKeys:
    """The sorted keys of a sparse ledger, with an optional lookup table over their range.

    >>> keys = SparseKeys()
    >>> slots, moved = keys.assign(np.array([30, 10, 30]))
    >>> slots.tolist(), keys.keys.tolist(), moved.tolist()
    ([1, 0, 1], [10, 30], [])
    >>> slots, moved = keys.assign(np.array([20, 10]))
    >>> slots.tolist(), moved.tolist()  # 10 stays at slot 0, 30 moves to slot 2
    ([1, 0], [0, 2])
    """

    def __init__(self, keys: np.ndarray | None = None) -> None:
        self.keys = np.empty(0, dtype=np.int64) if keys is None else keys
        self._lo = 0
        self._lut: np.ndarray | None = None  # lut[id - lo]: the id's slot, or -1

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + (0 if self._lut is None else self._lut.nbytes))

    def assign(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Slots of ``ids``, adding the unseen ones; and where the previous keys' slots moved (None: none added)."""
        if ids.size == 0:
            return np.empty(0, dtype=np.int64), None
        lo = min(int(ids.min()), int(self.keys[0]) if self.keys.size else int(ids.min()))
        hi = max(int(ids.max()), int(self.keys[-1]) if self.keys.size else int(ids.max()))
        if hi - lo < max(_LUT_MIN, _LUT_SPAN * (self.keys.size + ids.size)) and hi - lo < 2**31 - 1:
            return self._assign_lut(ids, lo, hi)
        self._lut = None
        return self._assign_sorted(ids)

    def _assign_lut(self, ids: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._lut is None or lo < self._lo or hi - self._lo >= self._lut.size:
            self._lo = lo
            self._lut = np.full(max(hi - lo + 1, _LUT_MIN), -1, dtype=np.int32)
            self._lut[self.keys - lo] = np.arange(self.keys.size, dtype=np.int32)
        offsets = ids - self._lo
        slots = self._lut[offsets]
        fresh = slots < 0
        moved = None
        if fresh.any():
            mark = np.zeros(self._lut.size, dtype=bool)
            mark[offsets[fresh]] = True
            old = self.keys
            self.keys = _merge(old, np.flatnonzero(mark) + self._lo)
            self._lut[self.keys - self._lo] = np.arange(self.keys.size, dtype=np.int32)
            moved = self._lut[old - self._lo].astype(np.int64)
            slots = self._lut[offsets]
        return slots.astype(np.int64), moved

    def _assign_sorted(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        order = np.argsort(ids)  # one sort of the batch gives its distinct ids
        sorted_ids = ids[order]
        run_start = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
        uniq = sorted_ids[run_start]
        if self.keys.size:
            pos = np.minimum(np.searchsorted(self.keys, uniq), self.keys.size - 1)
            new = uniq[self.keys[pos] != uniq]
        else:
            new = uniq
        moved = None
        if new.size:
            old = self.keys
            self.keys = _merge(old, new)
            moved = np.searchsorted(self.keys, old)
        slots = np.empty(ids.size, dtype=np.int64)
        slots[order] = np.searchsorted(self.keys, uniq)[np.cumsum(run_start) - 1]
        return slots, moved


def _merge(keys: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Two disjoint sorted key arrays as one (timsort merges two sorted runs in linear time)."""
    merged = np.concatenate([keys, new])
    merged.sort(kind="stable")
    return merged
