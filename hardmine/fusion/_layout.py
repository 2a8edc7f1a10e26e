"""The flat index space and the sample ids of a fusion: where each source lies and how ids encode it.

A sample id is ``code << 40 | index``: ``code`` is a stable 22-bit code of the source's name
(``zlib.crc32``, never Python's salted ``hash``), ``index`` the sample's index inside its source.
Ids are therefore the same in every run, process and machine, and they never collide across sources.
The layout is also the ledger's :class:`~hardmine.ledger.IdIndex`: slot == flat index.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ID_BITS = 40  # low bits: the index inside the source (up to 2**40 samples per source)
CODE_BITS = 22  # high bits: the source code; 22 + 40 = 62 bits, so every id is a positive int64
_INDEX_MASK = (1 << ID_BITS) - 1
_FORMAT = "hardmine-fusion"
_VERSION = 1
MAX_SALT = 2**32  # user salts lie in [0, MAX_SALT); the sampler's own shuffle uses MAX_SALT itself


def source_code(name: str) -> int:
    """The stable id code of a source name (22 bits of its CRC-32).

    >>> source_code("bbu") == source_code("bbu") != source_code("lvis")
    True
    """
    return zlib.crc32(name.encode("utf-8")) & ((1 << CODE_BITS) - 1)


@dataclass(frozen=True)
class SourceSpec:
    """One pool of a fusion as the sampler and the id space see it (no data)."""

    name: str
    kind: str  # "target" | "auxiliary"
    size: int
    ratio: float
    replacement: bool = False
    salt: int | None = None  # None: the source code

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


def check_names(named: Sequence[tuple[str, str]]) -> None:
    """Refuse empty or repeated source names in ``(name, kind)`` pairs; the one place names are checked.

    >>> check_names([("bbu", "target"), ("bbu", "auxiliary")])
    Traceback (most recent call last):
    ...
    ValueError: source name 'bbu' is used both as a target and as an auxiliary; source names must be unique
    """
    seen: dict[str, str] = {}
    for name, kind in named:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"source names must be non-empty strings, but got {name!r}")
        if name in seen:
            what = "both as a target and as an auxiliary" if seen[name] != kind else f"twice as a {kind}"
            raise ValueError(f"source name {name!r} is used {what}; source names must be unique")
        seen[name] = kind


def _check_spec(s: SourceSpec) -> None:
    if s.kind not in ("target", "auxiliary"):
        raise ValueError(f"{s.name!r}: kind must be 'target' or 'auxiliary', but got {s.kind!r}")
    if isinstance(s.ratio, bool) or not isinstance(s.ratio, (int, float)) or not math.isfinite(s.ratio) \
            or s.ratio < 0:
        raise ValueError(f"{s.label}: ratio must be a finite number >= 0, but got ratio={s.ratio!r}")
    if s.size < 0 or s.size > _INDEX_MASK:
        raise ValueError(f"{s.label}: size must be in 0..2**{ID_BITS}-1, but got size={s.size}")
    bad_salt = s.salt is not None and (isinstance(s.salt, bool) or int(s.salt) != s.salt
                                       or not 0 <= s.salt < MAX_SALT)
    if bad_salt:
        raise ValueError(f"{s.label}: salt must be an integer in [0, 2**32), but got salt={s.salt!r}")
    if s.kind == "target" and s.size == 0:
        raise ValueError(f"{s.label} is empty: a target must hold at least one sample")
    if s.kind == "auxiliary" and s.size == 0 and s.ratio > 0:
        raise ValueError(f"{s.label} is empty but has ratio={s.ratio}: it cannot supply draws; "
                         "give it samples or ratio 0")


class FusionLayout:
    """Sources in flat order (targets first), their offsets, per-epoch quotas and id codes.

    Quotas: a target draws ``round(ratio * size)`` per epoch (Python's ``round``); an auxiliary draws
    ``round(ratio * T)`` where ``T`` is the sum of the target quotas.
    """

    def __init__(self, specs: Sequence[SourceSpec]) -> None:
        specs = list(specs)
        check_names([(s.name, s.kind) for s in specs])
        for s in specs:
            _check_spec(s)
        kinds = [s.kind for s in specs]
        if "target" not in kinds:
            raise ValueError("a fusion needs at least one target source, but got none")
        if kinds != sorted(kinds, key=lambda k: k != "target"):
            raise ValueError("targets must come before auxiliaries in the flat order")
        codes = [source_code(s.name) for s in specs]
        by_code: dict[int, str] = {}
        for s, c in zip(specs, codes):
            if c in by_code:
                raise ValueError(f"sources {by_code[c]!r} and {s.name!r} share the sample-id code {c} "
                                 f"(22 bits of the CRC-32 of the name); rename one of them")
            by_code[c] = s.name
        salts = [c if s.salt is None else int(s.salt) for s, c in zip(specs, codes)]
        by_salt: dict[int, str] = {}
        for s, salt in zip(specs, salts):
            if salt in by_salt:
                raise ValueError(f"sources {by_salt[salt]!r} and {s.name!r} share the seed salt {salt}; "
                                 "their draws would be identical: give each its own salt")
            by_salt[salt] = s.name
        self.specs: tuple[SourceSpec, ...] = tuple(specs)
        self.names: tuple[str, ...] = tuple(s.name for s in specs)
        self.num_targets = kinds.count("target")
        self.sizes = np.array([s.size for s in specs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.codes = np.array(codes, dtype=np.int64)
        self.salts: tuple[int, ...] = tuple(salts)
        target_quotas = [round(s.ratio * s.size) for s in specs[: self.num_targets]]
        self.target_quota = int(sum(target_quotas))
        if self.target_quota == 0:
            raise ValueError("every target has quota round(ratio * size) = 0: an epoch would train on no "
                             f"target sample (targets {list(self.names[: self.num_targets])})")
        aux_quotas = [round(s.ratio * self.target_quota) for s in specs[self.num_targets:]]
        self.quotas = np.array(target_quotas + aux_quotas, dtype=np.int64)
        self.num_mineable = int(self.offsets[self.num_targets])
        self.size = int(self.offsets[-1])
        self.epoch_length = int(self.quotas.sum())
        self._code_order = np.argsort(self.codes, kind="stable")
        self._sorted_codes = self.codes[self._code_order]

    # ------------------------------------------------------------------ ids (the ledger's IdIndex)
    def decode(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(source position, index in source)`` of each id; ValueError naming an id that decodes to none."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        codes = ids >> ID_BITS  # arithmetic shift: a negative id gives a negative code, matching no source
        index = ids & _INDEX_MASK
        pos = np.minimum(np.searchsorted(self._sorted_codes, codes), self._sorted_codes.size - 1)
        known = self._sorted_codes[pos] == codes
        if not known.all():
            bad = int(ids[~known][0])
            raise ValueError(f"sample_id {bad} decodes to no source of this fusion: its source code "
                             f"{bad >> ID_BITS} is none of {dict(zip(self.names, self.codes.tolist()))}")
        src = self._code_order[pos]
        over = index >= self.sizes[src]
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise ValueError(f"sample_id {int(ids[i])} decodes to index {int(index[i])} of source "
                             f"{self.names[src[i]]!r}, which has only {int(self.sizes[src[i]])} samples")
        return src, index

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """Flat indices of sample ids (ValueError naming an id that decodes to no source/index)."""
        src, index = self.decode(ids)
        return np.asarray(self.offsets[src] + index, dtype=np.int64)

    def ids(self, slots: Any) -> np.ndarray:
        """Sample ids of flat indices."""
        flat = np.asarray(slots, dtype=np.int64).reshape(-1)
        if flat.size and int(flat.view(np.uint64).max()) >= self.size:
            bad = int(flat[(flat < 0) | (flat >= self.size)][0])
            raise IndexError(f"flat index {bad} is outside 0..{self.size - 1} (the fusion's length)")
        src = self.source_of(flat)
        return np.asarray((self.codes[src] << ID_BITS) | (flat - self.offsets[src]), dtype=np.int64)

    def source_of(self, flat: np.ndarray) -> np.ndarray:
        """Source position of each (valid) flat index; empty sources are skipped."""
        return np.searchsorted(self.offsets, flat, side="right") - 1

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """A JSON-able description: enough to decode ids and check a saved plan, without the data."""
        sources = []
        for i, s in enumerate(self.specs):
            d = asdict(s)
            d.update(code=int(self.codes[i]), salt=self.salts[i], offset=int(self.offsets[i]),
                     quota=int(self.quotas[i]), ratio=float(s.ratio))
            sources.append(d)
        return {"format": _FORMAT, "version": _VERSION, "id_bits": ID_BITS, "sources": sources,
                "num_mineable": self.num_mineable, "size": self.size, "epoch_length": self.epoch_length}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> FusionLayout:
        """Rebuild a layout from :meth:`describe` (refusing another format, version or id layout)."""
        if not isinstance(description, dict) or description.get("format") != _FORMAT:
            raise ValueError("not a FusionDataset description (expected the dict FusionDataset.describe() "
                             f"returns, with format={_FORMAT!r})")
        if description.get("version") != _VERSION or description.get("id_bits") != ID_BITS:
            raise ValueError(f"cannot read a fusion description of version {description.get('version')!r} "
                             f"with id_bits={description.get('id_bits')!r}; this hardmine reads version "
                             f"{_VERSION} with id_bits={ID_BITS}")
        sources = description["sources"]
        specs = [SourceSpec(s["name"], s["kind"], int(s["size"]), float(s["ratio"]), bool(s["replacement"]),
                            int(s["salt"])) for s in sources]
        layout = cls(specs)
        stored = [int(s["code"]) for s in sources]
        if stored != layout.codes.tolist():
            raise ValueError(f"the description's source codes {stored} differ from the codes of their names "
                             f"{layout.codes.tolist()}; it was written by an incompatible hardmine")
        return layout

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.name}:{s.kind[0]}[{s.size}]x{q}" for s, q in zip(self.specs, self.quotas))
        return f"FusionLayout({parts}; epoch_length={self.epoch_length})"


def decode_ids(description: dict[str, Any], ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Source names and indices of sample ids, from a saved ``FusionDataset.describe()`` (no data needed).

    >>> layout = FusionLayout([SourceSpec("bbu", "target", 3, 1.0), SourceSpec("lvis", "auxiliary", 5, 1.0)])
    >>> names, index = decode_ids(layout.describe(), layout.ids([2, 3]))
    >>> names.tolist(), index.tolist()
    (['bbu', 'lvis'], [2, 0])
    """
    layout = FusionLayout.from_description(description)
    src, index = layout.decode(ids)
    return np.asarray(layout.names, dtype=str)[src], index
