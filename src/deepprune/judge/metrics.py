"""Offline judge metrics: AUROC, TNR at a fixed FNR, per generating model and per source, the ROC curve, its plot.

Scores are P(same answer) and label 1 means "same answer" (the positive class). TNR@FNR=0.2, as the
paper defines it: pick the threshold below which 20 % of the same-answer pairs score (they would be
called "different"); TNR is the share of different-answer pairs scoring below that threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

AVERAGE = "average"


def _as_arrays(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return s, y


def tnr_at_fnr(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, fnr: float = 0.2
) -> tuple[float, float]:
    """Return ``(tnr, threshold)``: pairs scoring strictly below ``threshold`` are called "different".

    The threshold is the ``floor(fnr * P)``-th smallest positive score (0-based), so exactly that many
    positives fall below it when scores are distinct, and never more (ties only lower the FNR).
    """
    s, y = _as_arrays(scores, labels)
    pos, neg = np.sort(s[y == 1]), s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan
    threshold = float(pos[min(int(math.floor(fnr * len(pos))), len(pos) - 1)])
    return float(np.mean(neg < threshold)), threshold


def judge_metrics(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, fnr: float = 0.2
) -> dict[str, Any]:
    """AUROC (torchmetrics) and TNR at the given FNR; NaN when a class is missing."""
    s, y = _as_arrays(scores, labels)
    pos = int(y.sum())
    if 0 < pos < len(y):
        import torch
        from torchmetrics.functional.classification import binary_auroc

        auroc = float(binary_auroc(torch.from_numpy(s), torch.from_numpy(y)))
    else:
        auroc = math.nan
    tnr, threshold = tnr_at_fnr(s, y, fnr)
    return {"auroc": auroc, "tnr_at_fnr": tnr, "threshold": threshold, "n": int(len(y)), "pos": pos}


def rank_auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """AUROC as the Mann-Whitney share of (same, different) pairs ranked right, ties counted half; NaN when a
    class is missing. The value `judge_metrics` gets from torchmetrics, in numpy: cheap enough to recompute on
    thousands of bootstrap resamples."""
    s, y = _as_arrays(scores, labels)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int(len(y) - pos.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, tied values share their mean rank
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_intervals(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[Any],
    reference: Sequence[float] | np.ndarray | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The judge's AUROC with a percentile interval from resampling ``groups`` (problems) with replacement, and
    with ``reference`` (a zero-shot scorer on the same pairs) the reference's and the paired difference judge -
    reference, all three on the same resamples (`deepprune.stats.resample_blocks`).

    The pairs of one problem share its traces, so problems, not pairs, are the unit of resampling. A resample
    whose pairs hold one class has no AUROC and is left out of the quantiles. Returns ``{"auroc": Interval,
    "auroc_reference": Interval, "auroc_diff": Interval}`` (the last two with ``reference``), each Interval's
    ``mean`` the full-data value; None where the pairs hold one class.
    """
    from deepprune.stats import Interval, resample_blocks

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    s, y = _as_arrays(scores, labels)
    g = np.asarray([str(x) for x in groups], dtype=object)
    r = None if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    if len(g) != len(s) or (r is not None and len(r) != len(s)):
        raise ValueError(f"scores, labels, groups and reference differ in length: {len(s)} scores, {len(g)} groups")
    members = [np.flatnonzero(g == name) for name in dict.fromkeys(g.tolist())]  # first-seen order
    arms = {"auroc": s} if r is None else {"auroc": s, "auroc_reference": r}
    point = {k: rank_auroc(v, y) for k, v in arms.items()}
    if r is not None:
        point["auroc_diff"] = point["auroc"] - point["auroc_reference"]
    if any(math.isnan(v) for v in point.values()):
        return dict.fromkeys(point)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for block in resample_blocks(len(members), n_boot, seed):
        for row in block:
            idx = np.concatenate([members[i] for i in row])
            values = {k: rank_auroc(v[idx], y[idx]) for k, v in arms.items()}
            if any(math.isnan(v) for v in values.values()):
                continue
            for k, v in values.items():
                draws[k].append(v)
            if r is not None:
                draws["auroc_diff"].append(values["auroc"] - values["auroc_reference"])
    if not draws["auroc"]:  # every resample held one class (one problem holds all different-answer pairs)
        return {k: Interval(v, math.nan, math.nan, level) for k, v in point.items()}
    alpha = (1 - level) / 2
    out = {}
    for k, v in point.items():
        low, high = np.quantile(draws[k], [alpha, 1 - alpha])
        out[k] = Interval(v, float(low), float(high), level)
    return out


def per_model_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    models: Sequence[str | None],
    fnr: float = 0.2,
) -> dict[str, dict[str, Any]]:
    """`judge_metrics` for each generating model, plus an ``"average"`` row.

    The average row is the unweighted mean of the per-model AUROC and TNR (the paper's "Average"
    column), with ``n``/``pos`` summed and ``threshold`` None (thresholds differ per model).
    """
    s, y = _as_arrays(scores, labels)
    m = np.asarray([str(x) for x in models], dtype=object)
    if len(m) != len(s):
        raise ValueError(f"models and scores differ in length: {len(m)} vs {len(s)}")
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(m.tolist())):
        mask = m == name
        out[name] = judge_metrics(s[mask], y[mask], fnr)
    rows = list(out.values())
    out[AVERAGE] = {
        "auroc": float(np.mean([r["auroc"] for r in rows])) if rows else math.nan,
        "tnr_at_fnr": float(np.mean([r["tnr_at_fnr"] for r in rows])) if rows else math.nan,
        "threshold": None,
        "n": int(sum(r["n"] for r in rows)),
        "pos": int(sum(r["pos"] for r in rows)),
    }
    return out


def per_source_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    sources: Sequence[str],
    models: Sequence[str | None],
    reference: Sequence[float] | np.ndarray | None = None,
    fnr: float = 0.2,
    problems: Sequence[Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """`judge_metrics` of each source's pairs pooled, and under ``"models"`` of each (source, model); with
    ``reference`` (a zero-shot scorer's scores on the same pairs) its ``auroc_reference`` and
    ``tnr_at_fnr_reference`` beside the judge's in every entry. With ``problems`` (each pair's problem id) too,
    the paired difference ``auroc_diff`` (judge - reference) and 95% intervals ``auroc_ci``,
    ``auroc_reference_ci`` and ``auroc_diff_ci`` from resampling problems (`auroc_intervals`), for each source
    and, where a source has several models, for each of them; [NaN, NaN] where no resample holds both classes."""
    s, y = _as_arrays(scores, labels)
    r = None if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    src, mod = np.asarray([str(x) for x in sources], dtype=object), np.asarray([str(x) for x in models], dtype=object)
    pid = None if problems is None else np.asarray([str(x) for x in problems], dtype=object)
    if not len(src) == len(mod) == len(s) or any(x is not None and len(x) != len(s) for x in (r, pid)):
        raise ValueError(f"scores, labels, sources, models, reference and problems differ in length: {len(s)} scores")

    def entry(mask: np.ndarray, intervals: bool) -> dict[str, Any]:
        row = judge_metrics(s[mask], y[mask], fnr)
        if r is not None:
            ref = judge_metrics(r[mask], y[mask], fnr)
            row |= {"auroc_reference": ref["auroc"], "tnr_at_fnr_reference": ref["tnr_at_fnr"]}
            if pid is not None and intervals:
                ci = auroc_intervals(s[mask], y[mask], pid[mask], reference=r[mask])
                row["auroc_diff"] = row["auroc"] - row["auroc_reference"]
                for key, iv in ci.items():
                    row[f"{key}_ci"] = [math.nan, math.nan] if iv is None else [iv.low, iv.high]
        return row

    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(src.tolist())):
        mask = src == name
        names = sorted(set(mod[mask].tolist()))
        # one model: its entry is the source's, whose interval is already there
        models = {m: entry(mask & (mod == m), len(names) > 1) for m in names}
        out[name] = entry(mask, True) | {"models": models}
    return out


def roc_curve(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (descending scores; ties move together)."""
    s, y = _as_arrays(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


class RocCurve(NamedTuple):
    """One ROC curve as points: false- and true-positive rates (a plain ``(fpr, tpr)`` pair, with its area)."""

    fpr: list[float]
    tpr: list[float]

    @classmethod
    def from_scores(cls, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> RocCurve:
        """The curve of scores for the positive class (label 1 = same answer), by :func:`roc_curve`.

        Raises when a class is missing: the curve would be a line of one class against nothing.
        """
        _, y = _as_arrays(scores, labels)
        pos = int(y.sum())
        if pos == 0 or pos == len(y):
            raise ValueError(f"ROC needs both classes, got {pos} positive and {len(y) - pos} negative")
        fpr, tpr = roc_curve(scores, labels)
        return cls(fpr.tolist(), tpr.tolist())

    @property
    def auroc(self) -> float:
        """The area under the points (trapezoids; on a curve from scores it equals the pairwise AUROC, ties 1/2)."""
        order = sorted(range(len(self.fpr)), key=lambda i: (self.fpr[i], self.tpr[i]))
        xs, ys = [float(self.fpr[i]) for i in order], [float(self.tpr[i]) for i in order]
        return sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))


def plot_roc(
    curves: Mapping[str, RocCurve | tuple[Sequence[float], Sequence[int]]], path: str | Path, title: str = "ROC"
) -> Path:
    """Draw one ROC curve per entry (the legend gives its AUROC) and save a PNG; returns the path.

    The one ROC plot of deepprune: ``train``/``evaluate`` write ``roc.png`` with it, the report its overlay of a
    sweep's runs. An entry is a :class:`RocCurve` (points, e.g. saved in a run's metrics.json) or a
    ``(scores, labels)`` pair, turned into its curve by :func:`roc_curve`.
    """
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_roc: no curves")
    fig = Figure(figsize=(6.0, 5.5), layout="constrained")  # object API: no pyplot state, no GUI backend
    ax = fig.add_subplot(1, 1, 1)
    for name, entry in curves.items():
        if isinstance(entry, RocCurve):
            curve, auroc = entry, entry.auroc
        else:
            _, y = _as_arrays(*entry)
            curve = RocCurve(*(a.tolist() for a in roc_curve(*entry)))
            auroc = curve.auroc if 0 < y.sum() < len(y) else math.nan  # one class: no AUROC, as judge_metrics
        ax.plot(curve.fpr, curve.tpr, lw=1.6, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (0.500)")
    # TNR@FNR=0.2 is read where a curve crosses TPR = 0.8: TNR = 1 - FPR there
    ax.axhline(0.8, ls=":", color="grey", lw=0.8, label="FNR = 0.2")
    ax.set_xlabel("false positive rate (different-answer pairs called same)")
    ax.set_ylabel("true positive rate (same-answer pairs called same)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=130)
    return path
