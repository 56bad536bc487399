"""Offline judge metrics: AUROC, TNR at a fixed FNR, per generating model, and ROC plots.

Scores are P(same answer) and label 1 means "same answer" (the positive class). TNR@FNR=0.2, as the
paper defines it: pick the threshold below which 20 % of the same-answer pairs score (they would be
called "different"); TNR is the share of different-answer pairs scoring below that threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def plot_roc(
    curves: Mapping[str, tuple[Sequence[float], Sequence[int]]], path: str | Path, title: str = "ROC"
) -> Path:
    """Draw one ROC curve per entry (legend shows its AUROC) and save a PNG; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5.5, 5))
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global backend
    ax = fig.add_subplot(1, 1, 1)
    for name, (scores, labels) in curves.items():
        fpr, tpr = roc_curve(scores, labels)
        auroc = judge_metrics(scores, labels)["auroc"]
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (0.500)")
    ax.set_xlabel("False positive rate (different-answer pairs called same)")
    ax.set_ylabel("True positive rate (same-answer pairs called same)")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    return path
