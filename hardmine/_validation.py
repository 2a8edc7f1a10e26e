"""Turning user input (lists, NumPy arrays, torch tensors) into checked 1-D arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch here
        t = x.detach().cpu()
        if t.dtype.is_floating_point and t.element_size() < 4:  # bf16/fp16 have no NumPy twin for bf16
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(x)


def joined(parts: list[np.ndarray], dtype: Any = np.float64) -> np.ndarray:
    """One array of ``parts`` in order: the only one itself (no copy), or an empty one of ``dtype``."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, dtype)


def _as_1d(x: Any, name: str, what: str = "") -> np.ndarray:
    """``x`` as a NumPy array of one dimension (a scalar becomes one entry)."""
    a = _to_numpy(x)
    a = a.reshape(1) if a.ndim == 0 else a
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D{what}, but got shape {a.shape}")
    return a


def as_id_array(x: Any, name: str = "ids") -> np.ndarray:
    """A 1-D int64 array of ids; refuses floats and booleans rather than guessing."""
    if type(x) is np.ndarray and x.dtype == np.int64 and x.ndim == 1:  # the per-step fast path
        return x.copy()
    a = _as_1d(x, name)
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integers (sample ids), but got dtype {a.dtype}")
    if a.dtype == np.uint64 and int(a.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64, but got {int(a.max())}")
    return a.astype(np.int64, copy=True)


def as_loss_array(x: Any, name: str = "losses") -> np.ndarray:
    """A 1-D float array (NaN/inf allowed here: the ledger skips and counts them)."""
    if type(x) is np.ndarray and x.ndim == 1 and x.dtype.char in "fd":  # per-step fast path: float32 or float64
        return x.copy()
    a = _as_1d(x, name, " (one loss per sample)")
    if a.size and not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be numbers, but got dtype {a.dtype}")
    return a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=True)


def as_weight_array(x: Any, expected_len: int, name: str = "weights") -> np.ndarray:
    """A 1-D float64 array of ``expected_len`` finite, non-negative weights."""
    a = _to_numpy(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, but got shape {a.shape}")
    if a.size != expected_len:
        raise ValueError(f"{name} must have one entry per sample: expected length {expected_len}, "
                         f"but got length {a.size}")
    if a.size and a.dtype == bool:
        raise ValueError(f"{name} must be numbers, but got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if a.size and (not a.min() >= 0 or not np.isfinite(a.max())):  # two reductions catch NaN, inf and < 0
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be finite, but {name}[{i}] = {a[i]}")
        i = int(np.flatnonzero(a < 0)[0])
        raise ValueError(f"{name} must be >= 0, but {name}[{i}] = {a[i]}")
    return a
