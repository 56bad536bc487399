"""Metrics: AUROC against brute-force pair counting, TNR@FNR by hand, per-model average, the ROC curve and its PNG."""

import itertools
import math
import random

import numpy as np
import pytest

from deepprune.judge.metrics import RocCurve, judge_metrics, per_model_metrics, plot_roc, tnr_at_fnr


def brute_force_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pair_counting_with_ties():
    rng = random.Random(0)
    labels = [rng.randint(0, 1) for _ in range(200)]
    scores = [round(rng.random() * 0.6 + 0.3 * y, 1) for y in labels]  # coarse rounding -> many ties
    assert judge_metrics(scores, labels)["auroc"] == pytest.approx(brute_force_auroc(scores, labels), abs=1e-6)


def test_auroc_literal():
    # pos {0.9, 0.4}, neg {0.5, 0.1}: pairs won 0.9>0.5, 0.9>0.1, 0.4>0.1; lost 0.4<0.5 -> 3/4
    m = judge_metrics([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0])
    assert m["auroc"] == pytest.approx(0.75)
    assert (m["n"], m["pos"]) == (4, 2)


def test_tnr_at_fnr_by_hand():
    pos = [0.1 * i for i in range(1, 11)]  # 10 positives: 0.1 .. 1.0
    neg = [0.05, 0.15, 0.25, 0.35, 0.5]
    scores, labels = pos + neg, [1] * 10 + [0] * 5
    tnr, threshold = tnr_at_fnr(scores, labels, fnr=0.2)
    # 20 % of 10 positives = 2 fall below the threshold -> threshold is the 3rd smallest positive, 0.3
    assert threshold == pytest.approx(0.3)
    assert tnr == pytest.approx(3 / 5)  # 0.05, 0.15, 0.25 are below 0.3
    fnr_real = np.mean(np.asarray(pos) < threshold)
    assert fnr_real == pytest.approx(0.2)


def test_single_class_gives_nan():
    m = judge_metrics([0.2, 0.8], [1, 1])
    assert math.isnan(m["auroc"]) and math.isnan(m["tnr_at_fnr"])


def test_per_model_metrics_and_average():
    scores = [0.9, 0.4, 0.5, 0.1] + [0.8, 0.2, 0.3, 0.7]
    labels = [1, 1, 0, 0] + [1, 0, 0, 1]
    models = ["A"] * 4 + ["B"] * 4
    out = per_model_metrics(scores, labels, models)
    assert set(out) == {"A", "B", "average"}
    assert out["A"]["auroc"] == pytest.approx(0.75)
    assert out["B"]["auroc"] == pytest.approx(1.0)
    assert out["average"]["auroc"] == pytest.approx(0.875)
    assert out["average"]["n"] == 8 and out["average"]["pos"] == 4


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="length"):
        judge_metrics([0.1, 0.2], [1])


def test_plot_roc_writes_png(tmp_path):
    path = plot_roc({"A": ([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]), "B": ([0.8, 0.2], [1, 0])}, tmp_path / "roc.png", "t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_roc_curve_area_is_the_pairwise_auroc_and_needs_both_classes():
    rng = random.Random(1)
    labels = [rng.randint(0, 1) for _ in range(120)]
    scores = [round(rng.random() * 0.5 + 0.3 * y, 1) for y in labels]  # ties across classes
    curve = RocCurve.from_scores(scores, labels)
    assert curve.auroc == pytest.approx(brute_force_auroc(scores, labels), abs=1e-12)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert len(curve.fpr) == len(set(scores)) + 1  # one point per distinct score, plus the origin
    fpr, tpr = curve  # a plain (fpr, tpr) pair too
    assert RocCurve(fpr, tpr) == (fpr, tpr)
    with pytest.raises(ValueError, match="both classes, got 2 positive and 0 negative"):
        RocCurve.from_scores([0.1, 0.2], [1, 1])


def test_plot_roc_takes_points_and_scores(tmp_path):
    curves = {
        "points": RocCurve([0.0, 0.5, 1.0], [0.0, 1.0, 1.0]),
        "scores": ([0.9, 0.1], [1, 0]),
        "one": ([0.3], [1]),
    }
    data = plot_roc(curves, tmp_path / "roc.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="no curves"):
        plot_roc({}, tmp_path / "none.png")
