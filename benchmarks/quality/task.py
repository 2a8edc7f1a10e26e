"""The quality benchmark's tasks: two synthetic long tails without categories and a real known-category one.

All are 10-way classification of feature vectors with a clean, class-balanced test set:

* ``subpop`` -- each class has one common mode (300 training samples) and three rare modes (20 each),
  tight clusters placed 3.5 units from *another* class's common mode. Uniform sampling at a fixed
  step budget leaves the rare modes half learned; they are consistent (every sample of a mode has
  the same label), so the model learns them once it sees them often enough.
* ``small_object`` -- each sample is a "scene": 24 global features that, for a large object, carry
  the class (its common mode) and 8 local features carrying a class template. For small objects
  (60 per class) the global features are a faded (x0.5) scene of some other class and only the local
  template tells the class: the model has to learn a second cue from few samples.
* ``digits_lt`` -- scikit-learn's UCI handwritten digits (8x8 images, shipped with the package: nothing is
  downloaded): 50 test images per class, the rest for training with classes 7, 8 and 9 cut to 8% (about 10
  images each). The long tail is in the labels, so a frequency prior over categories (= labels) applies.

Label noise flips the training label of a random ``noise`` share of samples to a uniformly chosen
other class. Test labels are clean. Everything is drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TASKS", "Task", "make_task"]

TASKS = ("subpop", "small_object", "digits_lt")
RARE_DIGITS = (7, 8, 9)
NUM_CLASSES = 10


@dataclass(frozen=True)
class Task:
    """Training set (with observed, possibly flipped labels) and a clean test set."""

    x: np.ndarray  # float32 (n, d)
    y: np.ndarray  # int64 observed labels
    y_true: np.ndarray  # int64 clean labels
    rare: np.ndarray  # bool: rare sub-population / small object
    noisy: np.ndarray  # bool: label was flipped
    x_test: np.ndarray
    y_test: np.ndarray
    rare_test: np.ndarray
    num_classes: int = NUM_CLASSES

    @property
    def categories(self) -> np.ndarray:
        """What a user would pass as ``categories``: the observed (possibly flipped) training labels."""
        return self.y


def _flip(y: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    noisy = rng.random(y.size) < noise
    out = y.copy()
    out[noisy] = (y[noisy] + rng.integers(1, NUM_CLASSES, size=int(noisy.sum()))) % NUM_CLASSES
    return out, noisy


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.normal(size=shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _subpop(rng: np.random.Generator, n_common: int = 300, n_modes: int = 3, n_rare: int = 20,
            sep: float = 4.2, offset: float = 3.5, spread: float = 0.7, d: int = 24):
    k = NUM_CLASSES
    mu = sep * _unit(rng, (k, d))
    host = (np.arange(k)[:, None] + rng.integers(1, k, size=(k, n_modes))) % k
    nu = (mu[host] + offset * _unit(rng, (k, n_modes, d))).reshape(k * n_modes, d)

    def draw(nc: int, nr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        yc = np.repeat(np.arange(k), nc)
        xc = mu[yc] + rng.normal(size=(yc.size, d))
        mode = np.repeat(np.arange(k * n_modes), nr)
        xr = nu[mode] + spread * rng.normal(size=(mode.size, d))
        yr = mode // n_modes
        rare = np.r_[np.zeros(yc.size, bool), np.ones(yr.size, bool)]
        return np.concatenate([xc, xr]).astype(np.float32), np.r_[yc, yr].astype(np.int64), rare

    return draw(n_common, n_rare), draw(200, 50)


def _small_object(rng: np.random.Generator, n_large: int = 300, n_small: int = 60, sep: float = 4.2,
                  local_large: float = 0.5, local_small: float = 2.0, clutter: float = 0.5,
                  d_global: int = 24, d_local: int = 8):
    k = NUM_CLASSES
    mu = sep * _unit(rng, (k, d_global))
    tmpl = _unit(rng, (k, d_local))

    def draw(nl: int, ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.r_[np.repeat(np.arange(k), nl), np.repeat(np.arange(k), ns)].astype(np.int64)
        rare = np.r_[np.zeros(k * nl, bool), np.ones(k * ns, bool)]
        scene = np.where(rare, (y + rng.integers(1, k, size=y.size)) % k, y)  # small: someone else's scene
        xg = np.where(rare, clutter, 1.0)[:, None] * mu[scene] + rng.normal(size=(y.size, d_global))
        amp = np.where(rare, local_small, local_large)[:, None]
        xl = amp * tmpl[y] + 0.5 * rng.normal(size=(y.size, d_local))
        return np.concatenate([xg, xl], axis=1).astype(np.float32), y, rare

    return draw(n_large, n_small), draw(200, 150)


def _digits_lt(rng: np.random.Generator, n_test: int = 50, keep: float = 0.08):
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)
    train, test = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:n_test])
        rest = idx[n_test:]
        train.append(rest[: max(1, round(keep * rest.size))] if c in RARE_DIGITS else rest)
    tr, te = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    rare = np.isin(y, RARE_DIGITS)
    return (x[tr], y[tr], rare[tr]), (x[te], y[te], rare[te])


def make_task(kind: str, seed: int, noise: float) -> Task:
    """Build task ``kind`` (one of :data:`TASKS`) with a ``noise`` share of flipped training labels."""
    if kind not in TASKS:
        raise ValueError(f"kind must be one of {TASKS}, but got {kind=!r}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must satisfy 0 <= noise < 1, but got {noise=!r}")
    rng = np.random.default_rng([seed, TASKS.index(kind)])
    build = {"subpop": _subpop, "small_object": _small_object, "digits_lt": _digits_lt}[kind]
    (x, y, rare), (xt, yt, rt) = build(rng)
    y_obs, noisy = _flip(y, noise, np.random.default_rng([seed, TASKS.index(kind), 1]))
    return Task(x, y_obs, y, rare, noisy, xt, yt, rt)
