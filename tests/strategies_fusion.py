"""Hypothesis strategies for fusion tests: random pools, ratios, replacement, weights."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from hardmine.fusion import FusionDataset, Pool


@dataclass(frozen=True)
class FusionSpec:
    """Sizes and settings of a random fusion (datasets are ``range``s: items are the plain indices)."""

    targets: tuple[tuple[str, int, float], ...]  # name, size, ratio
    auxiliaries: tuple[tuple[str, int, float, bool], ...]  # name, size, ratio, replacement
    max_repeats: int | None

    def build(self, *, dict_items: bool = False) -> FusionDataset:
        def data(name: str, n: int) -> object:
            return [{"name": name, "i": i} for i in range(n)] if dict_items else range(n)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quota > pool without replacement: warned, tested elsewhere
            return FusionDataset(
                {n: Pool(data(n, size), ratio=r) for n, size, r in self.targets},
                {n: Pool(data(n, size), ratio=r, replacement=rep) for n, size, r, rep in self.auxiliaries})

    def expected_quotas(self) -> dict[str, int]:
        """The documented quota rule, computed independently of the library."""
        quotas = {n: round(r * size) for n, size, r in self.targets}
        total = sum(quotas.values())
        quotas.update({n: round(r * total) for n, _, r, _ in self.auxiliaries})
        return quotas


_names = st.text(alphabet="abcdefghijk_", min_size=1, max_size=6)


@st.composite
def fusion_specs(draw: st.DrawFn, *, max_size: int = 60, max_targets: int = 3, max_aux: int = 3
                 ) -> FusionSpec:
    n_t = draw(st.integers(1, max_targets))
    n_a = draw(st.integers(0, max_aux))
    names = draw(st.lists(_names, min_size=n_t + n_a, max_size=n_t + n_a, unique=True))
    ratio = st.one_of(st.just(1.0), st.floats(0.1, 3.0))
    targets = tuple((names[i], draw(st.integers(1, max_size)), draw(ratio)) for i in range(n_t))
    auxiliaries = []
    for name in names[n_t:]:
        size = draw(st.integers(0, max_size))
        aux_ratio = 0.0 if size == 0 else draw(st.one_of(st.just(0.0), st.floats(0.0, 2.5)))
        auxiliaries.append((name, size, aux_ratio, draw(st.booleans())))
    assume(sum(round(r * n) for _, n, r in targets) > 0)
    need = max(math.ceil(round(r * n) / n) for _, n, r in targets)  # uniform must fit under the cap
    max_repeats = draw(st.one_of(st.none(), st.integers(max(need, 1), need + 3)))
    return FusionSpec(targets, tuple(auxiliaries), max_repeats)


@st.composite
def target_weights(draw: st.DrawFn, spec: FusionSpec) -> np.ndarray:
    """Mining-like weights over all target indices (1 for most, ``hard_weight`` for a random subset)."""
    n = sum(size for _, size, _ in spec.targets)
    hard = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return np.where(hard, draw(st.floats(1.0, 6.0)), 1.0)
