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

:func:`expected_calibration_error` and :func:`plot_reliability` measure the result; :func:`choose_tau` picks
the threshold for ``tau=auto`` from a stated target on the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

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


def _scores(scores: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise ValueError(f"{name} has non-finite values")
    return s


def _to_z(scores: Sequence[float] | np.ndarray, space: str) -> np.ndarray:
    s = _scores(scores)
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


def _labels(labels: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"scores and labels differ in length: {n} vs {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (different answers) or 1 (same answer)")
    return y.astype(np.int64)


@dataclass(frozen=True)
class IdentityCalibration:
    """No calibration: the raw score (the record of a judge exported before calibration existed)."""

    method: str = "identity"

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return _scores(scores).copy()

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
    y = _labels(labels, len(z))
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


def reliability_curve(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of [0, 1]: mean score, share of same-answer pairs, pair count (empty bins: NaN, 0).

    Bin ``i`` holds scores in ``[i / n_bins, (i + 1) / n_bins)``; the last bin also holds 1.0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    s = _scores(scores)
    y = _labels(labels, len(s))
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError(f"calibration error needs probabilities in [0, 1], got [{s.min():.3g}, {s.max():.3g}]")
    idx = np.minimum((s * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=s, minlength=n_bins) / counts
        acc = np.bincount(idx, weights=y, minlength=n_bins) / counts
    return conf, acc, counts


def expected_calibration_error(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = 10
) -> float:
    """ECE: the pair-weighted mean over bins of ``|share of same-answer pairs - mean score|`` (NaN if empty)."""
    conf, acc, counts = reliability_curve(scores, labels, n_bins)
    total = counts.sum()
    if total == 0:
        return math.nan
    full = counts > 0
    return float(np.sum(counts[full] * np.abs(acc[full] - conf[full])) / total)


def plot_reliability(
    curves: Mapping[str, tuple[Sequence[float], Sequence[int]]],
    path: str | Path,
    n_bins: int = 10,
    title: str = "Reliability",
) -> Path:
    """One reliability line per entry (legend shows its ECE) over the diagonal, pair counts below; saves a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5.5, 6.5))
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global backend
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centers = (np.arange(n_bins) + 0.5) / n_bins
    width = 0.8 / (n_bins * max(len(curves), 1))
    for i, (name, (scores, labels)) in enumerate(curves.items()):
        conf, acc, counts = reliability_curve(scores, labels, n_bins)
        ece = expected_calibration_error(scores, labels, n_bins)
        full = counts > 0
        top.plot(conf[full], acc[full], marker="o", label=f"{name} (ECE {ece:.3f})")
        offset = (i - (len(curves) - 1) / 2) * width
        bottom.bar(centers + offset, counts, width=width, label=name)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set_ylabel("Share of same-answer pairs")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.01)
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("Predicted P(same answer), by bin")
    bottom.set_ylabel("Pairs")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    return path


# tau=auto targets: what share of which pairs the threshold may get wrong on the validation pairs.
TAU_TARGETS = {
    "false_merge": "at most `rate` of the different-answer pairs score >= tau (would be merged)",
    "same_split": "at most `rate` of the same-answer pairs score < tau (would be split)",
}


@dataclass(frozen=True)
class TauChoice:
    """A threshold chosen on validation pairs, its target, and what it achieves there."""

    tau: float
    target: str
    rate: float
    false_merge_rate: float  # different-answer pairs scoring >= tau
    same_merge_rate: float  # same-answer pairs scoring >= tau
    pairs: int

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"tau=auto -> {self.tau:.4g} ({self.target} <= {self.rate:g} on {self.pairs} validation pairs: "
            f"merges {self.same_merge_rate:.3f} of same-answer, {self.false_merge_rate:.3f} of different-answer pairs)"
        )


def choose_tau(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    target: str = "false_merge",
    rate: float = 0.1,
) -> TauChoice:
    """The threshold meeting ``target`` at ``rate`` on validation pairs that merges the most same-answer pairs.

    ``false_merge``: the smallest observed score above the ``(floor(rate * N) + 1)``-th largest different-answer
    score, so at most ``floor(rate * N)`` of the ``N`` different-answer pairs reach it (the next float above that
    score when no observed score is larger). ``same_split``: the ``floor(rate * P)``-th smallest same-answer score
    (0-based), as :func:`deepprune.judge.metrics.tnr_at_fnr`. Scores are the ones the judge gives online (the
    calibrated ones where the export has a calibration); pairs merge when they score >= tau.
    """
    if target not in TAU_TARGETS:
        raise ValueError(f"tau target must be one of {sorted(TAU_TARGETS)}, got {target!r}")
    if not 0 <= rate <= 1:
        raise ValueError(f"tau target rate must be in [0, 1], got {rate}")
    s = _scores(scores)
    y = _labels(labels, len(s))
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(
            f"tau=auto needs same-answer and different-answer validation pairs, got {len(pos)} and {len(neg)}"
        )
    if target == "same_split":
        from deepprune.judge.metrics import tnr_at_fnr

        _, tau = tnr_at_fnr(s, y, rate)
    else:
        allowed = int(math.floor(rate * len(neg)))
        if allowed >= len(neg):
            tau = float(s.min())
        else:
            bar = float(np.sort(neg)[::-1][allowed])  # the largest different-answer score that must stay below
            above = s[s > bar]
            tau = float(above.min()) if above.size else math.nextafter(bar, math.inf)
    return TauChoice(
        tau=tau,
        target=target,
        rate=float(rate),
        false_merge_rate=float(np.mean(neg >= tau)),
        same_merge_rate=float(np.mean(pos >= tau)),
        pairs=int(len(s)),
    )


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
    s = _scores(val_scores, "validation scores")
    y = _labels(val_labels, len(s))
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
        ts = _scores(test[0], "test scores")
        ty = _labels(test[1], len(ts))
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


def tau_from_record(
    record: Mapping[str, Any] | None, target: str | None = None, rate: float | None = None
) -> TauChoice:
    """``tau=auto`` for an exported judge: the threshold its export recorded, or one chosen for another
    ``target``/``rate`` on the (calibrated) validation pairs it recorded.

    A judge without a validation record (not exported by ``python -m deepprune.train`` with calibration, or not a
    trained judge at all) raises: ``auto`` has nothing to be chosen on.
    """
    record = record or {}
    recorded = record.get("tau_auto")
    pairs = record.get("validation_pairs")
    if not recorded and not pairs:
        raise ValueError(
            "tau=auto needs a judge with a validation record (an export of `python -m deepprune.train` with "
            "calibration, which records tau_auto and its validation pairs); this judge has none: set tau=<0..1>"
        )
    if recorded and target in (None, recorded["target"]) and rate in (None, recorded["rate"]):
        return TauChoice(**recorded)
    if not pairs:
        raise ValueError(f"tau=auto for {target} {rate}: the export records only {recorded}, no validation pairs")
    target = target if target is not None else (recorded or {}).get("target", "same_split")
    rate = rate if rate is not None else (recorded or {}).get("rate", 0.2)
    return choose_tau(pairs["scores"], pairs["labels"], target, float(rate))
