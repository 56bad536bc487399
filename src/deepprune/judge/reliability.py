"""Reliability of a judge's P(same): the reliability curve, the expected calibration error, and its diagram.

Scores are probabilities of "same answer" and label 1 means same answer, as everywhere in `deepprune.judge`.
:func:`as_scores` / :func:`as_labels` are the input checks shared by calibration and threshold choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["as_labels", "as_scores", "expected_calibration_error", "plot_reliability", "reliability_curve"]


def as_scores(scores: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise ValueError(f"{name} has non-finite values")
    return s


def as_labels(labels: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"scores and labels differ in length: {n} vs {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (different answers) or 1 (same answer)")
    return y.astype(np.int64)


def reliability_curve(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of [0, 1]: mean score, share of same-answer pairs, pair count (empty bins: NaN, 0).

    Bin ``i`` holds scores in ``[i / n_bins, (i + 1) / n_bins)``; the last bin also holds 1.0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    s = as_scores(scores)
    y = as_labels(labels, len(s))
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
