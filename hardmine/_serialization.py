"""Nested state dicts to one ``.npz`` file and back: arrays stay arrays, the rest is JSON. No pickle.

Arrays are stored losslessly in their smallest form and read back in their own dtype: integers in the
narrowest type that holds their range, float64 that float32 holds exactly as float32, and ``arange(n)``
(a dense ledger's ids) as its length alone. Each array is converted and streamed into the archive one at
a time, so a save never holds the whole file in memory.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import time
import zipfile
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hardmine._state import IdRange

_MAGIC = "hardmine-state"
_TMP = ".tmp"
_ARRAY = "__array__"
_RANGE = "__range__"


def _is_range(a: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether ``a`` is ``arange(a.size)``: its ends first, then a chunk at a time (no full-size temporary)."""
    if a.ndim != 1 or a.size < 2 or a.dtype.kind not in "iu" or a[0] != 0 or a[-1] != a.size - 1:
        return False
    step = np.arange(min(chunk, a.size), dtype=a.dtype)
    for start in range(0, a.size, chunk):
        part = a[start : start + chunk]
        if not np.array_equal(part, step[: part.size] + start):
            return False
    return True


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest dtype that holds every value exactly (a view of ``a`` when there is none)."""
    if not a.size:
        return a
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        kinds = (np.uint8, np.uint16, np.uint32, np.uint64) if lo >= 0 else (np.int8, np.int16, np.int32, np.int64)
        small = next(np.dtype(t) for t in kinds if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
        return a.astype(small, copy=False) if small.itemsize < a.itemsize else a
    if a.dtype == np.float64:
        with np.errstate(over="ignore"):
            single = a.astype(np.float32)
        if np.array_equal(single.astype(np.float64), a, equal_nan=True):
            return single
    return a


def _split(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if isinstance(obj, IdRange):
        return {_RANGE: obj.size, "dtype": "<i8"}
    if isinstance(obj, np.ndarray):
        if _is_range(obj):
            return {_RANGE: int(obj.size), "dtype": obj.dtype.str}
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY: key, "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        return {str(k): _split(v, arrays, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save {type(obj).__name__} at {path or 'state'}; state holds arrays, "
                    "numbers, strings, lists and dicts")


def _join(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if _ARRAY in obj and set(obj) <= {_ARRAY, "dtype"}:
            a = np.array(arrays[obj[_ARRAY]])
            return a.astype(obj["dtype"], copy=False) if "dtype" in obj else a
        if _RANGE in obj and set(obj) == {_RANGE, "dtype"}:
            return np.arange(int(obj[_RANGE]), dtype=obj["dtype"])
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save_state(state: dict[str, Any], path: str | PathLike[str], kind: str) -> None:
    """Write ``state`` durably and atomically: a crash never leaves half a file, nor a file that is not on disk.

    The arrays stream into a temporary file next to ``path`` (created with the process umask, like any file
    the user writes), which is flushed to disk (fsync) and then renamed over ``path``; the folder's entry is
    synced too. Temporary files a killed earlier save left behind are removed."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"magic": _MAGIC, "kind": kind, "state": _split(state, arrays, "")}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(p)
    tmp = p.with_name(f"{p.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for key, array in arrays.items():  # what np.savez does, one compact array at a time
                    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, _compact(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        _sync_folder(p.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_orphans(path: Path, min_age: float = 60.0) -> list[Path]:
    """Delete temporary files an interrupted save of ``path`` left (``<name>.<pid>.<hex>.tmp``); returns them.

    A file is an orphan when its writer is gone: its process is not alive here and it has not been touched
    for ``min_age`` seconds (a writer on another machine sharing the folder may have the same pid)."""
    removed = []
    for tmp in sorted(path.parent.glob(f"{glob.escape(path.name)}.*{_TMP}")):
        pid = tmp.name[len(path.name) + 1 :].split(".")[0]
        try:
            if pid.isdigit() and _alive(int(pid)) or time.time() - tmp.stat().st_mtime < min_age:
                continue
            tmp.unlink()
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder: the rename is as durable as they allow
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_state(path: str | PathLike[str], kind: str) -> dict[str, Any]:
    """Read a file written by :func:`save_state`; refuse files of another kind with a clear error."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such hardmine state file: {str(p)!r}")
    with p.open("rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # every .npz is a zip archive; say so before numpy suggests unpickling
        raise ValueError(f"{str(p)!r} is not a hardmine state file "
                         f"({'an empty file' if not head else 'not an .npz archive'})")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ValueError(f"{str(p)!r} is not a hardmine state file or is cut short "
                         f"({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("magic") != _MAGIC:
        raise ValueError(f"{str(p)!r} is not a hardmine state file")
    if meta.get("kind") != kind:
        raise ValueError(f"{str(p)!r} holds a {meta.get('kind')!r} state, not a {kind!r} state")
    state = _join(meta["state"], arrays)
    assert isinstance(state, dict)
    return state
