"""State as a protocol: anything with ``state_dict()`` / ``load_state_dict()`` is :class:`Stateful`.

Every state dict hardmine writes carries its ``kind`` (the class that wrote it) and a ``version``;
:func:`check_state` refuses a state of another kind, another version or with missing keys with one
ValueError that says what differs, never a bare KeyError halfway through a load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class IdRange:
    """``arange(size)`` not built: what a state written out at once (``state_dict(copy=False)``) holds for a
    dense id range. The state file stores it as its length; loading gives the array back.

    >>> IdRange(3).array().tolist()
    [0, 1, 2]
    """

    size: int

    def array(self) -> np.ndarray:
        return np.arange(self.size, dtype=np.int64)


def owned(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its top-level arrays copied and its :class:`IdRange` built: nothing shared with live state."""
    return {k: v.array() if isinstance(v, IdRange) else v.copy() if isinstance(v, np.ndarray) else v
            for k, v in state.items()}


@runtime_checkable
class Stateful(Protocol):
    """What can be checkpointed: ledger, samplers, triggers, guards, record buffer, id spaces, the miner.

    >>> import hardmine as hm
    >>> isinstance(hm.LossLedger(), hm.Stateful), isinstance(hm.TopK(3), hm.Stateful)
    (True, False)
    """

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def stamp(kind: str, version: int, **fields: Any) -> dict[str, Any]:
    """A state dict headed by its ``kind`` and ``version``."""
    return {"kind": kind, "version": version, **fields}


def check_state(state: Any, kind: str, version: int, keys: Iterable[str] = (), *,
                where: str | None = None) -> Mapping[str, Any]:
    """``state`` itself when it is a ``kind`` state of ``version`` holding ``keys``; else ValueError.

    ``where`` (a file, a checkpoint) is named in the message when given.

    >>> check_state({"kind": "EpochTrigger", "version": 1}, "PlateauTrigger", 1)
    Traceback (most recent call last):
    ...
    ValueError: cannot load a 'EpochTrigger' state into a PlateauTrigger (expected kind 'PlateauTrigger')
    """
    at = f" from {where}" if where else ""
    if not isinstance(state, Mapping):
        raise ValueError(f"cannot load {kind} state{at}: expected a dict, but got {type(state).__name__}")
    got = state.get("kind")
    if got != kind:
        raise ValueError(f"cannot load a {got!r} state into a {kind}{at} (expected kind {kind!r})")
    if state.get("version") != version:
        raise ValueError(f"cannot load {kind} state{at} of version {state.get('version')!r}; this hardmine "
                         f"reads version {version}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{kind} state{at} is missing keys {missing}; it holds {sorted(state)}")
    return state


def check_same(kind: str, field: str, saved: Any, current: Any, *, where: str | None = None) -> None:
    """Refuse a state whose ``field`` differs from this object's, naming both values."""
    if saved != current:
        at = f" from {where}" if where else ""
        raise ValueError(f"{kind} state{at} has {field}={saved!r}, but this {kind} has {field}={current!r}")


class Versioned:
    """A mixin: ``state_dict()`` headed by the class name and a version, checked on load.

    Subclasses with state list its keys in ``_STATE_KEYS`` and implement ``_state()`` / ``_load(state)``.
    """

    _STATE_KEYS: ClassVar[tuple[str, ...]] = ()
    _STATE_VERSION: ClassVar[int] = 1

    def _state(self) -> dict[str, Any]:
        return {}

    def _load(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_state` returned (kind, version and keys already checked)."""

    def _state_view(self) -> dict[str, Any]:
        """:meth:`_state` without copies (arrays may be views of the live state); by default :meth:`_state`."""
        return self._state()

    def state_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """This object's state; ``copy=False`` may share arrays with the live state (valid until it changes) and
        hold :class:`IdRange` for a dense id range: for writing out at once, as ``HardMiner.save`` does."""
        return stamp(type(self).__name__, self._STATE_VERSION, **(self._state() if copy else self._state_view()))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state of another kind or version is refused, naming both."""
        self._load(check_state(state, type(self).__name__, self._STATE_VERSION, self._STATE_KEYS))
