"""Percentile-bootstrap confidence intervals for online results (problems as the unit of resampling).

Online replay gives one outcome per (problem, arrival order): accuracy 0/1, tokens spent. The orders of one
problem share its traces, so they are not independent draws: the clustered bootstrap resamples *problems* with
replacement and averages over each problem's orders, which is why 30 problems stay 30 however many orders run.
A paired difference (DeepPrune minus cons@N) is taken per (problem, order) before resampling, so both arms see
the same resampled problems; its interval is much narrower than the two intervals side by side.

Every function draws its resamples from ``numpy.random.default_rng(seed)`` in fixed-size blocks, so the same
inputs and seed give the same interval on any machine, and inputs of the same number of problems share the same
resamples (the intervals of two arms and of their difference use one set of draws).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Interval",
    "bootstrap_ci",
    "clustered_bootstrap_ci",
    "paired_diff_ci",
    "ratio_reduction_ci",
    "resample_blocks",
    "seed_interval",
]

# Resamples are drawn in blocks of this many rows: bounded memory for large inputs, and the same draws
# whatever the input size (a different block size would change the intervals).
_BLOCK = 256

# Outcomes: one per problem (1-D) or [problems x orders].
Outcomes = Sequence[float] | Sequence[Sequence[float]] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval at ``level``."""

    mean: float
    low: float
    high: float
    level: float = 0.95

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _check(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _as_matrix(values: Outcomes, name: str) -> np.ndarray:
    """A [problems x orders] float matrix; a flat sequence is one order per problem."""
    m = np.asarray(values, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise ValueError(f"{name} must be 1-D (problems) or 2-D (problems x orders), got shape {m.shape}")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {m.shape}): no interval without outcomes")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} has non-finite values (NaN or inf); drop or fill them first")
    return m


def _paired(a: Outcomes, b: Outcomes, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    ma, mb = _as_matrix(a, name_a), _as_matrix(b, name_b)
    if ma.shape != mb.shape:
        raise ValueError(
            f"{name_a} and {name_b} must be paired (same problems x orders): shapes {ma.shape} and {mb.shape}"
        )
    return ma, mb


def resample_blocks(n: int, n_boot: int = 2000, seed: int = 0) -> Iterator[np.ndarray]:
    """The resamples every interval here uses: ``n_boot`` draws of ``n`` row indices (with replacement) from
    ``default_rng(seed)``, yielded as [b x n] blocks (b <= 256) in order. The stream is the one that drawing
    ``rng.integers(0, n, n)`` once per resample gives, so a statistic computed one resample at a time on it has
    the same interval as one computed a block at a time."""
    # checked here, not in the generator, so a bad call fails where it is made
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if n < 1:
        raise ValueError(f"resample_blocks: no rows to resample (n={n})")
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n, size=(min(_BLOCK, n_boot - start), n)) for start in range(0, n_boot, _BLOCK))


def _bootstrap(
    n: int, statistic: Callable[[np.ndarray], np.ndarray], level: float, n_boot: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``n_boot`` resamples of ``range(n)``.

    ``statistic`` maps a [b x n] block of row indices to ``b`` values.
    """
    stats = np.concatenate([statistic(block) for block in resample_blocks(n, n_boot, seed)])
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def clustered_bootstrap_ci(
    values: Outcomes,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean of a [problems x orders] matrix with an interval from resampling problems (rows) with replacement.

    Each resample averages the per-problem means (over orders) of the drawn problems; a 1-D input is one
    order per problem, which is the plain bootstrap of the mean.
    """
    _check(level, n_boot)
    m = _as_matrix(values, "values")
    row_means = m.mean(axis=1)
    low, high = _bootstrap(len(row_means), lambda idx: row_means[idx].mean(axis=1), level, n_boot, seed)
    mean = float(row_means.mean())
    # Float summation of a constant can land an ulp off its mean; the interval must still contain the mean.
    return Interval(mean, min(low, mean), max(high, mean), level)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Interval:
    """Mean of ``values`` (independent outcomes) and its percentile-bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}; use clustered_bootstrap_ci for a matrix")
    return clustered_bootstrap_ci(v, level, n_boot, seed)


def paired_diff_ci(a: Outcomes, b: Outcomes, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``a - b`` paired by (problem, order), with the problem-clustered interval.

    ``a`` and ``b`` are outcomes of two policies on the same problems and arrival orders (same shape).
    """
    ma, mb = _paired(a, b, "a", "b")
    return clustered_bootstrap_ci(ma - mb, level, n_boot, seed)


def ratio_reduction_ci(
    tokens: Outcomes, reference: Outcomes, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Interval:
    """Token reduction ``1 - sum(tokens) / sum(reference)`` with the problem-clustered interval.

    The reduction is a ratio of totals (as the online summary reports it), not a mean of per-problem ratios,
    so a resample sums both arms over the drawn problems (all their orders) before dividing.
    """
    _check(level, n_boot)
    mt, mr = _paired(tokens, reference, "tokens", "reference")
    t, r = mt.sum(axis=1), mr.sum(axis=1)
    if r.sum() <= 0:
        raise ValueError("reference tokens sum to 0: the reduction is undefined")

    def stat(idx: np.ndarray) -> np.ndarray:
        denom = r[idx].sum(axis=1)
        # A resample of only zero-token reference problems has no defined ratio; count it as no reduction.
        return np.where(denom > 0, 1 - t[idx].sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)

    low, high = _bootstrap(len(t), stat, level, n_boot, seed)
    mean = float(1 - t.sum() / r.sum())
    return Interval(mean, min(low, mean), max(high, mean), level)


# two-sided 95% Student-t quantiles t(0.975, df) for df = 1..10 (few seeds); larger df use the normal's 1.96 bound
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def seed_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean over independent training seeds and its 95% Student-t interval (mean +- t * sd / sqrt(n)).

    A bootstrap of three seeds has only ten distinct resamples; the t interval is the usual report for a few
    independent runs. One value gives a zero-width interval (say how many seeds beside it).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"seed_interval needs a non-empty 1-D list of finite values, got {values!r}")
    mean = float(v.mean())
    if v.size == 1:
        return Interval(mean, mean, mean)
    t = _T975[v.size - 2] if v.size - 1 <= len(_T975) else 1.96
    half = t * float(v.std(ddof=1)) / float(np.sqrt(v.size))
    return Interval(mean, mean - half, mean + half)
