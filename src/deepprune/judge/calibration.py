"""Calibration of the judge's P(same) on validation pairs, its calibration error, and thresholds chosen on them.

A judge trained with a class-balancing loss or on one model's traces outputs scores whose 0.5 point means little
on another model (the CHAMP judge's useful threshold is about 0.04-0.15). Calibration maps the raw score to a
probability fitted on held-out (score, label) pairs; ``tau`` then keeps its meaning as a probability.

- :class:`TemperatureScaling` (Guo et al. 2017): ``sigmoid(logit(p) / T)``. One parameter; it sharpens or
  softens but keeps the 0.5 point where it is, so it fixes over/under-confidence, not a shifted base rate.
- :class:`PlattScaling` (Platt 1999): ``sigmoid(a * logit(p) + b)``. The intercept also moves the 0.5 point
  (a judge calibrated to its training class ratio).
- :class:`IsotonicCalibration`: the pool-adjacent-violators fit, piecewise linear between its blocks;
  non-decreasing but not strictly (flat steps), and the most data-hungry.

Scores that are probabilities are clipped to ``[EPS, 1 - EPS]`` and mapped to logits (``space="logit"``);
scores of another scale (a cosine) use ``space="raw"``. Temperature and Platt fits use Platt's smoothed targets
(``(P + 1) / (P + 2)`` and ``1 / (N + 2)``) so separable validation data gives finite parameters.
Every calibration round-trips through a plain-JSON record (``to_record`` / :func:`calibration_from_record`),
which is how the judge export stores it.

:func:`expected_calibration_error` and :func:`plot_reliability` (`deepprune.judge.reliability`) measure the result;
:func:`choose_tau` (`deepprune.judge.thresholds`) picks the threshold for ``tau=auto`` from a stated target on the
same pairs; :func:`calibrate_judge` does all three for ``python -m deepprune.train``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deepprune.judge.reliability import (  # re-exported: the calibration API in one import
    as_labels,
    as_scores,
    expected_calibration_error,
    plot_reliability,
    reliability_curve,
)
from deepprune.judge.thresholds import TAU_TARGETS, TauChoice, choose_tau, tau_from_record

__all__ = [
    "EPS",
    "Calibration",
    "IdentityCalibration",
    "TemperatureScaling",
    "PlattScaling",
    "IsotonicCalibration",
    "fit_calibration",
    "calibration_from_record",
    "expected_calibration_error",
    "reliability_curve",
    "plot_reliability",
    "TauChoice",
    "choose_tau",
    "TAU_TARGETS",
    "CalibrationReport",
    "calibrate_judge",
    "CalibratedScorer",
    "calibrated_scorer",
    "tau_from_record",
]

EPS = 1e-6
SPACES = ("logit", "raw")
METHODS = ("identity", "temperature", "platt", "isotonic")


class Calibration(Protocol):
    """A monotone map from the judge's raw score to a calibrated P(same)."""

    method: str

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray: ...

    def to_record(self) -> dict[str, Any]: ...


def _to_z(scores: Sequence[float] | np.ndarray, space: str) -> np.ndarray:
    s = as_scores(scores)
    if space == "raw":
        return s
    if space != "logit":
        raise ValueError(f"calibration space must be one of {SPACES}, got {space!r}")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError(
            f"space='logit' needs probabilities in [0, 1], got scores in [{s.min():.3g}, {s.max():.3g}]; "
            "use space='raw' for scores of another scale"
        )
    p = np.clip(s, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # overflow-free logistic


@dataclass(frozen=True)
class IdentityCalibration:
    """No calibration: the raw score (the record of a judge exported before calibration existed)."""

    method: str = "identity"

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return as_scores(scores).copy()

    def to_record(self) -> dict[str, Any]:
        return {"method": self.method}


@dataclass(frozen=True)
class TemperatureScaling:
    """``sigmoid(z / temperature)`` with ``z`` the logit (or raw) score; strictly increasing for T > 0."""

    temperature: float
    space: str = "logit"
    method: str = "temperature"

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return _sigmoid(_to_z(scores, self.space) / self.temperature)

    def to_record(self) -> dict[str, Any]:
        return {"method": self.method, "temperature": float(self.temperature), "space": self.space}


@dataclass(frozen=True)
class PlattScaling:
    """``sigmoid(slope * z + intercept)``; strictly increasing for slope > 0."""

    slope: float
    intercept: float
    space: str = "logit"
    method: str = "platt"

    def __post_init__(self) -> None:
        if not self.slope > 0:
            raise ValueError(f"Platt slope must be > 0 (a monotone calibration), got {self.slope}")

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * _to_z(scores, self.space) + self.intercept)

    def to_record(self) -> dict[str, Any]:
        slope, intercept = float(self.slope), float(self.intercept)
        return {"method": self.method, "slope": slope, "intercept": intercept, "space": self.space}


@dataclass(frozen=True)
class IsotonicCalibration:
    """Piecewise-linear through the PAV blocks' ``(z, value)`` knots; constant beyond the first and last knot."""

    knots: tuple[float, ...]
    values: tuple[float, ...]
    space: str = "logit"
    method: str = "isotonic"

    def __post_init__(self) -> None:
        if len(self.knots) != len(self.values) or not self.knots:
            raise ValueError(f"isotonic needs as many knots as values (>= 1): {len(self.knots)}, {len(self.values)}")
        if np.any(np.diff(self.knots) <= 0) or np.any(np.diff(self.values) < 0):
            raise ValueError("isotonic knots must increase strictly and values must not decrease")

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.interp(_to_z(scores, self.space), self.knots, self.values)

    def to_record(self) -> dict[str, Any]:
        return {"method": self.method, "knots": list(self.knots), "values": list(self.values), "space": self.space}


def _logistic_fit(x: np.ndarray, t: np.ndarray, w0: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Minimise the cross-entropy of ``sigmoid(x @ w)`` against soft targets ``t`` (damped Newton)."""

    def loss(w: np.ndarray) -> float:
        z = x @ w
        # log(1 + exp(z)) - t * z, stable for large |z|
        return float(np.mean(np.logaddexp(0, z) - t * z))

    w = w0.astype(np.float64)
    current = loss(w)
    for _ in range(max_iter):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - t) / len(t)
        hess = (x.T * (p * (1 - p))) @ x / len(t) + 1e-10 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-8:
            candidate = w - scale * step
            new = loss(candidate)
            if new <= current:
                break
            scale /= 2
        else:
            break
        converged = abs(current - new) < 1e-14 and np.abs(grad).max() < 1e-10
        w, current = candidate, new
        if converged:
            break
    return w


def _pav(z: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pool adjacent violators on ``y`` ordered by ``z`` (ties in ``z`` pooled first): knots and values."""
    order = np.argsort(z, kind="stable")
    zs, ys = z[order], y[order].astype(np.float64)
    uniq, start = np.unique(zs, return_index=True)
    sums = np.add.reduceat(ys, start)
    counts = np.diff(np.append(start, len(zs))).astype(np.float64)
    # Each block: [sum, count, first knot, last knot]; merge while the last two blocks violate the order.
    blocks: list[list[float]] = []
    for zi, s, c in zip(uniq, sums, counts):
        blocks.append([s, c, zi, zi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s2, c2, _, hi = blocks.pop()
            blocks[-1][0] += s2
            blocks[-1][1] += c2
            blocks[-1][3] = hi
    knots: list[float] = []
    values: list[float] = []
    for s, c, lo, hi in blocks:
        for k in (lo, hi) if hi > lo else (lo,):
            knots.append(float(k))
            values.append(float(s / c))
    return tuple(knots), tuple(values)


def fit_calibration(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    method: str = "temperature",
    space: str = "logit",
    smooth: bool = True,
) -> Calibration:
    """Fit ``method`` (identity, temperature, platt, isotonic) on validation ``(score, label)`` pairs.

    ``smooth`` uses Platt's smoothed targets for temperature and Platt (finite parameters on separable data).
    A fit whose slope is not positive means the judge ranks different-answer pairs above same-answer ones on
    these pairs; that raises instead of returning a calibration that would invert the judge.
    """
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    if method == "identity":
        return IdentityCalibration()
    z = _to_z(scores, space)
    y = as_labels(labels, len(z))
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"calibration needs both same-answer and different-answer pairs, got {n_pos} and {n_neg} "
            f"among {len(y)} validation pairs"
        )
    if method == "isotonic":
        knots, values = _pav(z, y)
        return IsotonicCalibration(knots, values, space)
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)) if smooth else y.astype(np.float64)
    if method == "temperature":
        (a,) = _logistic_fit(z[:, None], t, np.array([1.0]))
        if not a > 0:
            raise ValueError(f"temperature fit gave 1/T = {a:.3g} <= 0: the judge is anti-correlated with the labels")
        return TemperatureScaling(float(1 / a), space)
    a, b = _logistic_fit(np.stack([z, np.ones_like(z)], axis=1), t, np.array([1.0, 0.0]))
    if not a > 0:
        raise ValueError(f"Platt fit gave slope {a:.3g} <= 0: the judge is anti-correlated with the labels")
    return PlattScaling(float(a), float(b), space)


def calibration_from_record(record: Mapping[str, Any] | None) -> Calibration:
    """The calibration a ``to_record()`` dict describes; ``None`` (an export without one) is the identity."""
    if record is None:
        return IdentityCalibration()
    method = record.get("method")
    space = record.get("space", "logit")
    try:
        if method == "identity":
            return IdentityCalibration()
        if method == "temperature":
            return TemperatureScaling(float(record["temperature"]), space)
        if method == "platt":
            return PlattScaling(float(record["slope"]), float(record["intercept"]), space)
        if method == "isotonic":
            return IsotonicCalibration(tuple(map(float, record["knots"])), tuple(map(float, record["values"])), space)
    except KeyError as err:
        raise ValueError(f"calibration record of method {method!r} lacks key {err}: {dict(record)}") from None
    raise ValueError(f"calibration record has unknown method {method!r} (known: {METHODS})")


@dataclass
class CalibrationReport:
    """What training records about a judge's calibration: the map, its errors, and the ``tau=auto`` choice."""

    calibration: Calibration
    metrics: dict[str, Any]  # method, ECE before/after on validation (and test) pairs, a fit error if any
    tau_auto: TauChoice | None
    validation_scores: list[float]  # calibrated: what online scores look like, for other tau=auto targets
    validation_labels: list[int]

    def export_meta(self) -> dict[str, Any]:
        """The export record's keys: ``calibration``, ``tau_auto`` and ``validation_pairs`` (plain JSON)."""
        return {
            "calibration": self.calibration.to_record(),
            "tau_auto": self.tau_auto.to_record() if self.tau_auto is not None else None,
            "validation_pairs": {"scores": self.validation_scores, "labels": self.validation_labels},
        }


def calibrate_judge(
    val_scores: Sequence[float] | np.ndarray,
    val_labels: Sequence[int] | np.ndarray,
    method: str = "platt",
    space: str = "logit",
    tau_target: str = "same_split",
    tau_rate: float = 0.2,
    test: tuple[Sequence[float], Sequence[int]] | None = None,
    plot_path: str | Path | None = None,
    n_bins: int = 10,
) -> CalibrationReport:
    """Fit ``method`` on the validation pairs, measure ECE before/after (validation, and ``test`` pairs if given),
    draw the reliability diagram to ``plot_path``, and choose ``tau=auto`` on the calibrated validation scores.

    A fit that cannot be made (one class only, or a non-positive slope: temperature scaling cannot move the 0.5
    point of a judge whose scores sit far from the base rate) falls back to the identity and says why in
    ``metrics["fit_error"]``; a judge is still exported.
    """
    s = as_scores(val_scores, "validation scores")
    y = as_labels(val_labels, len(s))
    metrics: dict[str, Any] = {"method": method, "validation_pairs": int(len(s)), "validation_same": int(y.sum())}
    try:
        cal = fit_calibration(s, y, method, space)
    except ValueError as err:
        cal = IdentityCalibration()
        metrics["fit_error"] = str(err)
        metrics["method"] = cal.method
    calibrated = cal.apply(s)
    metrics["val/ece"] = expected_calibration_error(s, y, n_bins)
    metrics["val/ece_calibrated"] = expected_calibration_error(calibrated, y, n_bins)
    curves: dict[str, tuple[Sequence[float], Sequence[int]]] = {
        "validation, raw": (s, y),
        f"validation, {cal.method}": (calibrated, y),
    }
    if test is not None and len(test[0]):
        ts = as_scores(test[0], "test scores")
        ty = as_labels(test[1], len(ts))
        metrics["test/ece"] = expected_calibration_error(ts, ty, n_bins)
        metrics["test/ece_calibrated"] = expected_calibration_error(cal.apply(ts), ty, n_bins)
        curves |= {"test, raw": (ts, ty), f"test, {cal.method}": (cal.apply(ts), ty)}
    try:
        tau = choose_tau(calibrated, y, tau_target, tau_rate)
    except ValueError as err:
        tau = None
        metrics["tau_auto_error"] = str(err)
    if plot_path is not None:
        metrics["reliability_png"] = str(plot_reliability(curves, plot_path, n_bins, "Judge reliability"))
    return CalibrationReport(cal, metrics, tau, [float(v) for v in calibrated], [int(v) for v in y])


class CalibratedScorer:
    """A pair scorer whose scores pass through ``calibration``; every other attribute is the wrapped scorer's
    (``embed``, ``order_invariant``, ``tokenizer``, ``record``, ``close``...)."""

    def __init__(self, scorer: Any, calibration: Calibration) -> None:
        self.scorer = scorer
        self.calibration = calibration

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        raw = np.asarray(self.scorer.score(pairs), dtype=np.float64)
        return self.calibration.apply(raw) if raw.size else raw

    def __getattr__(self, name: str) -> Any:
        if name in ("scorer", "calibration"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.scorer, name)


def calibrated_scorer(scorer: Any, record: Mapping[str, Any] | None) -> Any:
    """``scorer`` wrapped in the calibration its export ``record`` holds (unchanged when there is none)."""
    cal = calibration_from_record((record or {}).get("calibration"))
    return scorer if isinstance(cal, IdentityCalibration) else CalibratedScorer(scorer, cal)
