"""The ledger's table: one record per slot as parallel columns, and the vectorised fold into it.

A fold that touches many slots (an epoch) scatters the losses once into a slot-indexed array and then
updates every column in sequential passes; a small fold gathers and scatters the touched slots; slots
seen several times in one fold take a closed-form EMA (or mean, max, last) over their group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DENSE_FOLD = 8  # a fold of at least size/_DENSE_FOLD observations scatters once and sweeps the columns


def rows_of(column: np.ndarray, rows: Any, copy: bool = True) -> np.ndarray:
    """``column[rows]`` as a new array (a slice only views, an index array already copies); with
    ``copy=False`` a slice stays a view, made read-only."""
    view: np.ndarray = column[rows]
    if not isinstance(rows, slice):
        return view  # a copy already
    if copy:
        return view.copy()
    view.flags.writeable = False
    return view


class Table:
    """Score f32, count i32, first loss f32, last-seen epoch i32 per slot: 16 bytes a slot.

    ``aggregate`` and ``decay`` say how a new observation combines with a slot's score; the first
    finite observation of a slot initialises it (no bias toward 0).
    """

    __slots__ = ("aggregate", "count", "decay", "first", "last", "score")

    def __init__(self, n: int, aggregate: str, decay: float) -> None:
        self.aggregate, self.decay = aggregate, decay
        self.score = np.zeros(n, dtype=np.float32)
        self.count = np.zeros(n, dtype=np.int32)
        self.first = np.zeros(n, dtype=np.float32)
        self.last = np.full(n, -1, dtype=np.int32)

    @property
    def size(self) -> int:
        return int(self.score.size)

    @property
    def nbytes(self) -> int:
        return int(self.score.nbytes + self.count.nbytes + self.first.nbytes + self.last.nbytes)

    def take(self, rows: Any, copy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(score, count, first, last)`` at ``rows`` (a slice, mask or slot array): new arrays, or with
        ``copy=False`` and a slice, read-only views."""
        return (rows_of(self.score, rows, copy), rows_of(self.count, rows, copy),
                rows_of(self.first, rows, copy), rows_of(self.last, rows, copy))

    def put(self, rows: Any, score: Any, count: Any, first: Any, last: Any) -> None:
        self.score[rows], self.count[rows], self.first[rows], self.last[rows] = score, count, first, last

    def resized(self, n: int, rows: np.ndarray) -> Table:
        """A table of ``n`` slots holding this one's records at ``rows`` (the sparse ledger grows)."""
        table = Table(n, self.aggregate, self.decay)
        if self.size:
            table.put(rows, *self.take(slice(None)))
        return table

    # ------------------------------------------------------------------ folding
    def fold(self, slots: np.ndarray, x: np.ndarray, epoch: int) -> None:
        """Fold finite float32 observations ``x`` (stream order) for ``slots``, stamped with ``epoch``."""
        n = self.size
        if slots.size * _DENSE_FOLD >= n:
            dense = np.full(n, np.nan, dtype=np.float32)  # the fold's loss per slot; NaN: not observed
            dense[slots] = x  # a repeated slot keeps one of its losses: found by the count below
            hit = dense == dense
            num_hit = int(np.count_nonzero(hit))
            if num_hit == slots.size:  # no slot repeated: one sweep does it
                self._sweep(dense, None if num_hit == n else hit, epoch)
                return
            multi_mask = np.bincount(slots, minlength=n)[slots] > 1
            dense[slots[multi_mask]] = np.nan
            self._sweep(dense, dense == dense, epoch)
        else:
            s = np.sort(slots)
            dup = s[1:][s[1:] == s[:-1]]
            if dup.size == 0:
                self._fold_single(slots, x, epoch)
                return
            multi_mask = np.isin(slots, dup)
            self._fold_single(slots[~multi_mask], x[~multi_mask], epoch)
        self._fold_grouped(slots[multi_mask], x[multi_mask], epoch)

    def _combine(self, old: np.ndarray, old_n: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The aggregate of a slot that has one already (``old`` over ``old_n`` observations) after one more
        observation ``x``, as a new array. A slot seen for the first time takes ``x`` itself instead."""
        if self.aggregate == "ema":  # float32 throughout: the table's precision, twice the speed
            d = np.float32(self.decay)
            new = old * d
            new += x * (np.float32(1.0) - d)
        elif self.aggregate == "mean":
            new = ((old * old_n + x) / (old_n + 1.0)).astype(np.float32)
        elif self.aggregate == "max":
            new = np.maximum(old, x)
        else:
            new = x.copy()
        return new

    def _sweep(self, dense: np.ndarray, hit: np.ndarray | None, epoch: int) -> None:
        """Fold one observation per slot (``dense``: the loss per slot) where ``hit``, or in every slot when
        ``hit`` is None, column by column."""
        seen = self.count > 0
        num_seen = int(np.count_nonzero(seen))
        if num_seen and self.aggregate == "ema":
            self._sweep_ema(dense, hit, seen, num_seen, epoch)
            return
        new = dense  # no slot has a score yet: nothing to combine with
        if num_seen:
            new = self._combine(self.score, self.count, dense)
            if num_seen < seen.size:
                np.copyto(new, dense, where=~seen)  # a slot's first loss starts its score
        if hit is None:
            self.score = new  # every slot changes: the new column replaces the old
            self.count += 1
            self.last.fill(epoch)
        else:
            np.copyto(self.score, new, where=hit)
            self.count += hit
            np.copyto(self.last, np.int32(epoch), where=hit)
        if num_seen < seen.size:
            np.copyto(self.first, dense, where=~seen if hit is None else hit & ~seen)

    def _sweep_ema(self, dense: np.ndarray, hit: np.ndarray | None, seen: np.ndarray, num_seen: int,
                   epoch: int) -> None:
        """:meth:`_sweep` for an EMA, in place: the same float32 arithmetic as :meth:`_combine` without a new
        column (``dense`` is scratch). A slot's first loss is stored first and then starts its score."""
        fresh = None if num_seen == seen.size else ~seen if hit is None else hit & ~seen
        if fresh is not None:
            np.copyto(self.first, dense, where=fresh)
        d = np.float32(self.decay)
        where = True if hit is None else hit
        np.multiply(self.score, d, out=self.score, where=where)
        np.multiply(dense, np.float32(1.0) - d, out=dense, where=where)
        np.add(self.score, dense, out=self.score, where=where)
        if fresh is not None:
            np.copyto(self.score, self.first, where=fresh)
        if hit is None:
            self.count += 1
            self.last.fill(epoch)
        else:
            self.count += hit
            np.copyto(self.last, np.int32(epoch), where=hit)

    def _fold_single(self, slots: np.ndarray, x: np.ndarray, epoch: int) -> None:
        """Each slot appears once: gather the touched records, update them, scatter them back."""
        if slots.size == 0:
            return
        old_n = self.count[slots]
        fresh = old_n == 0
        new = self._combine(self.score[slots], old_n, x)
        new[fresh] = x[fresh]
        self.score[slots] = new
        self.first[slots[fresh]] = x[fresh]
        self.count[slots] = old_n + 1
        self.last[slots] = epoch

    def _fold_grouped(self, slots: np.ndarray, x: np.ndarray, epoch: int) -> None:
        """Slots repeat: group them in stream order and fold each group in closed form."""
        order = _stable_order(slots)
        s, xs = slots[order], x[order].astype(np.float64)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        u = s[starts]
        c = np.diff(np.r_[starts, s.size])
        old_n = self.count[u]
        seen = old_n > 0
        old = self.score[u].astype(np.float64)
        if self.aggregate == "ema":
            d = self.decay
            pos = np.arange(s.size) - np.repeat(starts, c)  # position inside the group
            w = (1.0 - d) * _powers(d, np.repeat(c, c) - 1 - pos)
            w[starts] = np.where(seen, w[starts], np.power(d, c - 1))  # first observation initialises
            new = np.add.reduceat(w * xs, starts) + np.where(seen, np.power(d, c) * old, 0.0)
        elif self.aggregate == "mean":
            new = (old * old_n + np.add.reduceat(xs, starts)) / (old_n + c)
        elif self.aggregate == "max":
            m = np.maximum.reduceat(xs, starts)
            new = np.where(seen, np.maximum(old, m), m)
        else:
            new = xs[starts + c - 1]
        self.put(u, new, old_n + c, np.where(seen, self.first[u], xs[starts]), epoch)


def _powers(d: float, k: np.ndarray) -> np.ndarray:
    """``d ** k`` for small non-negative integer exponents, looked up in a table (a power per entry is slow)."""
    top = int(k.max()) if k.size else 0
    if top > 4096:
        return np.asarray(np.power(d, k), dtype=np.float64)
    table: np.ndarray = np.power(d, np.arange(top + 1, dtype=np.float64))
    return np.asarray(table[k])


def _stable_order(slots: np.ndarray) -> np.ndarray:
    """``np.argsort(slots, kind="stable")``, faster: one sort of the unique keys ``slot << 32 | position``."""
    if slots.size >= 2**32 or (slots.size and int(slots.max()) >= 2**31):
        return np.argsort(slots, kind="stable")
    keys = (slots << 32) | np.arange(slots.size, dtype=np.int64)
    keys.sort()
    return keys & 0xFFFFFFFF
