"""Per-sample categories (the object classes of an image, the label of a text) as flat arrays.

A :class:`Categories` holds, for every sample, the distinct categories present in it, in CSR form: one
flat array of category codes and ``num_samples + 1`` offsets (sample ``i`` owns
``codes[offsets[i]:offsets[i + 1]]``). User input is read once, in :meth:`Categories.from_samples` or
:meth:`Categories.from_column`; everything after that (frequencies, per-sample maxima) is a few
vectorised passes over the flat arrays, so a prior over millions of boxes costs milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from numbers import Integral
from typing import Any

import numpy as np

__all__ = ["Categories", "CategoriesLike"]

CategoriesLike = Any  # Categories | a 1-D int array (one per sample) | a sequence of int / iterable of ints


def _check_int_array(a: np.ndarray, where: str) -> np.ndarray:
    if a.size and (a.dtype == bool or not np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{where} must be integers (category ids), but got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{where} must fit in int64, but got {int(a.max())}")
    return a.astype(np.int64, copy=False)


def _sample_categories(i: int, item: Any) -> list[int]:
    """The category ids of sample ``i`` (an int, None for none, or an iterable of ints)."""
    if item is None:
        return []
    if isinstance(item, (Integral, np.integer)) and not isinstance(item, bool):
        return [int(item)]
    if isinstance(item, (str, bytes, bool, float)) or not isinstance(item, Iterable):
        raise ValueError(f"categories[{i}] must be an int or an iterable of ints, but got {item!r}; "
                         "map category names to ints first")
    out = []
    for c in item:
        if isinstance(c, bool) or not isinstance(c, (Integral, np.integer)):
            raise ValueError(f"categories[{i}] must hold ints (category ids), but holds {c!r}")
        out.append(int(c))
    return out


class Categories:
    """The distinct categories of each sample, as flat codes and offsets (CSR).

    Args:
        flat: category ids of every sample, concatenated (any int64 values; repeats inside a sample count once).
        offsets: ``num_samples + 1`` non-decreasing positions into ``flat``, from 0 to ``len(flat)``.

    Example:
        >>> cats = Categories.from_samples([3, [3, 7], [], 7, [7, 7, 9]])
        >>> cats.num_samples, cats.values.tolist(), cats.sample_share().tolist()
        (5, [3, 7, 9], [0.4, 0.6, 0.2])
        >>> cats.per_sample_max(np.array([1.0, 2.0, 5.0]), empty=1.0).tolist()
        [1.0, 2.0, 1.0, 2.0, 5.0]
        >>> cats.per_sample_argmax(np.array([1.0, 2.0, 5.0])).tolist()  # codes into values; -1: no category
        [0, 1, -1, 1, 2]
    """

    def __init__(self, flat: Any, offsets: Any) -> None:
        flat = _check_int_array(np.asarray(flat).reshape(-1), "categories")
        offsets = _check_int_array(np.asarray(offsets).reshape(-1), "category offsets")
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != flat.size:
            raise ValueError(f"category offsets must run from 0 to len(flat)={flat.size}, but got "
                             f"{offsets[:1].tolist()}..{offsets[-1:].tolist()}")
        if offsets.size > 1 and bool(np.any(offsets[1:] < offsets[:-1])):
            i = int(np.flatnonzero(offsets[1:] < offsets[:-1])[0])
            raise ValueError(f"category offsets must be non-decreasing, but offsets[{i + 1}] = {offsets[i + 1]} "
                             f"< offsets[{i}] = {offsets[i]}")
        self.num_samples = int(offsets.size - 1)
        rows = np.repeat(np.arange(self.num_samples, dtype=np.int64), np.diff(offsets))
        self.values, codes = np.unique(flat, return_inverse=True)  # distinct category ids, ascending
        codes = codes.reshape(-1).astype(np.int64)
        # one entry per (sample, category): sort by (row, code) and drop repeats (two boxes of one class)
        key = rows * max(self.values.size, 1) + codes
        key.sort(kind="stable")
        keep = np.r_[True, key[1:] != key[:-1]] if key.size else np.zeros(0, dtype=bool)
        key = key[keep]
        width = max(self.values.size, 1)
        self.codes = key % width  # int64 category codes 0..num_categories-1, grouped by sample
        self.offsets = np.searchsorted(key // width, np.arange(self.num_samples + 1), side="left").astype(np.int64)

    # ------------------------------------------------------------------ reading user input (once)
    @classmethod
    def from_samples(cls, categories: CategoriesLike, num_samples: int | None = None) -> Categories:
        """Categories from ``categories[i]`` = an int or an iterable of ints (None or ``[]``: none).

        A 1-D integer array (one category per sample) is read without a Python loop; a list is read once.
        ``num_samples``: the dataset length, checked against the number of entries.
        """
        if isinstance(categories, Categories):
            out = categories
        else:
            arr = categories if isinstance(categories, np.ndarray) else None
            if arr is None and hasattr(categories, "detach") and hasattr(categories, "numpy"):  # a torch tensor
                arr = categories.detach().cpu().numpy()
            if arr is not None and arr.dtype != object:
                if arr.ndim != 1:
                    raise ValueError(f"a categories array must be 1-D (one category per sample), but got shape "
                                     f"{arr.shape}; give a list of lists for several categories per sample")
                flat = _check_int_array(arr, "categories")
                out = cls(flat, np.arange(flat.size + 1, dtype=np.int64))
            else:
                if isinstance(categories, (str, bytes, Mapping)) or not isinstance(categories, Iterable):
                    raise TypeError("categories must be a sequence with one entry per sample (an int or an "
                                    f"iterable of ints), but got a {type(categories).__name__}")
                per_sample = [_sample_categories(i, c) for i, c in enumerate(categories)]
                lengths = np.fromiter((len(c) for c in per_sample), dtype=np.int64, count=len(per_sample))
                flat = np.fromiter(itertools.chain.from_iterable(per_sample), dtype=np.int64, count=int(lengths.sum()))
                out = cls(flat, np.r_[0, np.cumsum(lengths)])
        if num_samples is not None and out.num_samples != int(num_samples):
            raise ValueError(f"categories must have one entry per sample: expected {int(num_samples)}, but got "
                             f"{out.num_samples}")
        return out

    @classmethod
    def from_column(cls, dataset: Any, column: str) -> Categories:
        """Categories from one column of a Hugging Face ``datasets.Dataset``, without reading any other column.

        ``column`` holds an int or a list of ints per row; a dotted name reaches into a struct column
        (``"objects.category"`` for the usual detection layout). The column is read from the dataset's Arrow
        table (flat values and offsets), so images are never decoded.

        >>> import datasets  # doctest: +SKIP
        >>> ds = datasets.Dataset.from_dict({"objects": [{"category": [1, 2]}, {"category": [2]}]})  # doctest: +SKIP
        >>> Categories.from_column(ds, "objects.category").sample_share().tolist()  # doctest: +SKIP
        [0.5, 1.0]
        """
        if not (hasattr(dataset, "with_format") and hasattr(dataset, "column_names")):
            raise TypeError(f"from_column needs a datasets.Dataset, but got a {type(dataset).__name__}; "
                            "pass categories=[...] instead")
        head, *rest = column.split(".")
        if head not in dataset.column_names:
            raise ValueError(f"the dataset has no column {head!r}; its columns are {dataset.column_names}")
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = dataset.with_format("arrow")[head].combine_chunks()  # this column only, selections applied
        for part in rest:  # struct<..., part: ...> or list<struct<part: ...>>
            if pa.types.is_struct(arr.type):
                arr = pc.struct_field(arr, part)
            elif pa.types.is_list(arr.type) and pa.types.is_struct(arr.type.value_type):
                arr = pa.ListArray.from_arrays(arr.offsets, pc.struct_field(arr.values, part))
            else:
                raise ValueError(f"cannot read {column!r}: {part!r} is not a field of a struct column "
                                 f"(type {arr.type})")
        if pa.types.is_integer(arr.type):
            if arr.null_count:
                raise ValueError(f"column {column!r} has {arr.null_count} missing values; use a list column "
                                 "(an empty list for no category)")
            return cls.from_samples(np.asarray(arr.to_numpy(zero_copy_only=False)))
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) \
                or not pa.types.is_integer(arr.type.value_type):
            raise ValueError(f"column {column!r} must hold ints or lists of ints, but has type {arr.type}")
        arr = arr.fill_null(pa.scalar([], type=arr.type)) if arr.null_count else arr
        if arr.values.null_count:
            raise ValueError(f"column {column!r} holds {arr.values.null_count} missing category ids")
        offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        values = np.asarray(arr.values.to_numpy(zero_copy_only=False), dtype=np.int64)[offsets[0]:offsets[-1]]
        return cls(values, offsets - offsets[0])

    # ------------------------------------------------------------------ vectorised reads
    @property
    def num_categories(self) -> int:
        """Distinct category ids over all samples."""
        return int(self.values.size)

    def lengths(self) -> np.ndarray:
        """Distinct categories per sample."""
        return np.diff(self.offsets)

    def sample_share(self) -> np.ndarray:
        """Per category (aligned with :attr:`values`): the share of samples that contain it, ``f_c``."""
        return np.bincount(self.codes, minlength=self.num_categories) / max(self.num_samples, 1)

    def per_sample_max(self, per_category: np.ndarray, empty: float) -> np.ndarray:
        """``max`` of ``per_category[c]`` over each sample's categories (``empty`` for a sample with none)."""
        out = np.full(self.num_samples, float(empty), dtype=np.float64)
        if not self.codes.size:
            return out
        starts = self.offsets[:-1]
        has = starts < self.offsets[1:]  # reduceat over the non-empty rows' starts spans exactly each row
        out[has] = np.maximum.reduceat(np.asarray(per_category, dtype=np.float64)[self.codes], starts[has])
        return out

    def per_sample_argmax(self, per_category: np.ndarray, empty: int = -1) -> np.ndarray:
        """Per sample, the code of its category with the largest ``per_category`` value (the smallest code
        among ties; ``empty`` for a sample with none): the category that decides :meth:`per_sample_max`."""
        out = np.full(self.num_samples, int(empty), dtype=np.int64)
        if not self.codes.size:
            return out
        per_category = np.asarray(per_category, dtype=np.float64)
        rows = np.repeat(np.arange(self.num_samples, dtype=np.int64), self.lengths())
        at_max = np.flatnonzero(per_category[self.codes] == self.per_sample_max(per_category, -np.inf)[rows])
        first = np.r_[True, rows[at_max[1:]] != rows[at_max[:-1]]]  # codes ascend within a row: the smallest
        out[rows[at_max[first]]] = self.codes[at_max[first]]
        return out

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"Categories(num_samples={self.num_samples}, num_categories={self.num_categories}, "
                f"entries={self.codes.size})")
