"""Judge calibration: closed-form fits, monotonicity, JSON round trips, ECE by hand, tau=auto by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepprune.judge.calibration import (
    IdentityCalibration,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
    calibration_from_record,
    choose_tau,
    expected_calibration_error,
    fit_calibration,
    plot_reliability,
    reliability_curve,
)


def _sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _two_level(pos_at_minus: int, n_minus: int, pos_at_plus: int, n_plus: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores sigmoid(-1) and sigmoid(+1) with the given number of same-answer labels at each."""
    scores = np.array([_sig(-1.0)] * n_minus + [_sig(1.0)] * n_plus)
    labels = np.array(
        [1] * pos_at_minus + [0] * (n_minus - pos_at_minus) + [1] * pos_at_plus + [0] * (n_plus - pos_at_plus)
    )
    return scores, labels


def test_platt_fit_matches_the_closed_form() -> None:
    # Two logit levels z = -1, +1 with same-answer shares 1/5 and 3/4: the MLE passes through both shares,
    # so slope = (logit(3/4) - logit(1/5)) / 2 = ln(12) / 2 and intercept = (ln 3 - ln 4) / 2.
    scores, labels = _two_level(1, 5, 3, 4)
    cal = fit_calibration(scores, labels, "platt", smooth=False)
    assert isinstance(cal, PlattScaling)
    assert cal.slope == pytest.approx(math.log(12) / 2, abs=1e-7)
    assert cal.intercept == pytest.approx((math.log(3) - math.log(4)) / 2, abs=1e-7)
    assert cal.apply([_sig(-1.0), _sig(1.0)]) == pytest.approx([0.2, 0.75], abs=1e-7)


def test_temperature_fit_matches_the_closed_form() -> None:
    # z = -1 (1 of 5 same) and z = +1 (4 of 5 same): symmetric, so 1/T = logit(4/5) = ln 4.
    scores, labels = _two_level(1, 5, 4, 5)
    cal = fit_calibration(scores, labels, "temperature", smooth=False)
    assert isinstance(cal, TemperatureScaling)
    assert cal.temperature == pytest.approx(1 / math.log(4), abs=1e-7)
    # Temperature keeps the 0.5 point: it cannot shift a base rate.
    assert cal.apply([0.5]) == pytest.approx([0.5])


def test_temperature_recovers_an_overconfident_judge() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=20000)
    labels = (rng.random(z.size) < 1 / (1 + np.exp(-z / 2.5))).astype(int)  # true T = 2.5
    raw = 1 / (1 + np.exp(-z))
    cal = fit_calibration(raw, labels, "temperature")
    assert cal.temperature == pytest.approx(2.5, rel=0.05)
    assert expected_calibration_error(cal.apply(raw), labels) < 0.5 * expected_calibration_error(raw, labels)


def test_isotonic_is_the_hand_computed_pav_fit() -> None:
    # Labels 0, 1, 0, 1 at increasing scores: the middle violators pool to 0.5.
    scores = [0.1, 0.2, 0.3, 0.4]
    cal = fit_calibration(scores, [0, 1, 0, 1], "isotonic")
    assert isinstance(cal, IsotonicCalibration)
    assert cal.values == (0.0, 0.5, 0.5, 1.0)
    assert cal.apply(scores) == pytest.approx([0.0, 0.5, 0.5, 1.0])
    # Beyond the knots the value is constant (first and last block).
    assert cal.apply([0.0, 1.0]) == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibrated_score_is_monotone_and_round_trips(method: str) -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(600) < 0.3).astype(int)
    scores = np.clip(rng.beta(2, 8, size=600) + 0.2 * labels, 0, 1)
    cal = fit_calibration(scores, labels, method)
    grid = np.concatenate([[0.0], np.sort(rng.random(2000)), [1.0]])
    out = cal.apply(grid)
    steps = np.diff(out)
    if method == "isotonic":
        assert (steps >= 0).all()
    else:
        assert (steps > 0).all(), "temperature and Platt must be strictly increasing"
    # The record is plain JSON and gives back the same map.
    record = json.loads(json.dumps(cal.to_record()))
    assert record["method"] == method
    back = calibration_from_record(record)
    assert back == cal
    np.testing.assert_array_equal(back.apply(grid), out)


def test_identity_and_missing_record() -> None:
    assert calibration_from_record(None) == IdentityCalibration()
    assert fit_calibration([0.2, 0.8], [0, 1], "identity").apply([0.3]) == pytest.approx([0.3])


def test_logit_space_clips_probabilities_and_raw_space_takes_any_scale() -> None:
    cal = TemperatureScaling(2.0)
    # logit(1e-6) / 2 = -ln(1e6 - 1) / 2: exactly 0 and 1 are clipped, not infinite.
    assert cal.apply([0.0])[0] == pytest.approx(_sig(-math.log(1e6 - 1) / 2))
    assert np.isfinite(cal.apply([0.0, 1.0])).all()
    with pytest.raises(ValueError, match="space='raw'"):
        cal.apply([-0.5])
    cosine = fit_calibration([-0.4, -0.2, 0.3, 0.6], [0, 1, 0, 1], "platt", space="raw")
    assert calibration_from_record(cosine.to_record()).apply([0.1]) == pytest.approx(cosine.apply([0.1]))


def test_expected_calibration_error_by_hand() -> None:
    # Bin [0.1, 0.2): mean score 0.1, 1 of 2 same -> |0.5 - 0.1| = 0.4, weight 1/2.
    # Bin [0.9, 1.0]: mean score 0.9, 2 of 2 same -> 0.1, weight 1/2. ECE = 0.25.
    scores, labels = [0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]
    assert expected_calibration_error(scores, labels) == pytest.approx(0.25)
    conf, acc, counts = reliability_curve(scores, labels)
    assert counts.tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert acc[1] == 0.5 and acc[9] == 1.0
    # 1.0 falls into the last bin; a perfectly calibrated bin has zero error.
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0


def test_reliability_png(tmp_path) -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(300) < 0.4).astype(int)
    raw = np.clip(rng.beta(1, 6, size=300) + 0.3 * labels, 0, 1)
    cal = fit_calibration(raw, labels, "platt")
    path = plot_reliability({"raw": (raw, labels), "platt": (cal.apply(raw), labels)}, tmp_path / "rel.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_choose_tau_false_merge_on_a_uniform_grid() -> None:
    # Different-answer scores 0.00 .. 0.99 (uniform grid), same-answer scores 0.500 .. 0.995.
    # At most 10% merged: 10 of 100 may reach tau, the 11th largest (0.89) must not. The smallest observed
    # score above 0.89 is the same-answer 0.895 -> tau = 0.895, which merges 0.90 .. 0.99 (10%) and the
    # same-answer scores 0.895 .. 0.995 (21 of 100).
    neg = np.arange(100) / 100
    pos = 0.5 + np.arange(100) * 0.005
    scores = np.concatenate([neg, pos])
    labels = np.array([0] * 100 + [1] * 100)
    choice = choose_tau(scores, labels, "false_merge", 0.1)
    assert choice.tau == pytest.approx(0.895)
    assert choice.false_merge_rate == pytest.approx(0.10)
    assert choice.same_merge_rate == pytest.approx(0.21)
    assert choice.pairs == 200
    assert json.loads(json.dumps(choice.to_record()))["target"] == "false_merge"


def test_choose_tau_on_sampled_known_distributions() -> None:
    # Different-answer ~ U(0, 1), same-answer ~ U(0.5, 1): the 10% false-merge threshold is the 0.9 quantile
    # of U(0, 1), where U(0.5, 1) puts (1 - 0.9) / 0.5 = 20% of the same-answer pairs.
    rng = np.random.default_rng(3)
    neg, pos = rng.random(20000), 0.5 + 0.5 * rng.random(20000)
    scores, labels = np.concatenate([neg, pos]), np.array([0] * 20000 + [1] * 20000)
    choice = choose_tau(scores, labels, "false_merge", 0.1)
    assert choice.tau == pytest.approx(0.9, abs=0.01)
    assert choice.false_merge_rate <= 0.1
    assert choice.same_merge_rate == pytest.approx(0.2, abs=0.01)
    # At most 20% of same-answer pairs split: the 0.2 quantile of U(0.5, 1) = 0.6, merging 40% of U(0, 1).
    split = choose_tau(scores, labels, "same_split", 0.2)
    assert split.tau == pytest.approx(0.6, abs=0.01)
    assert split.same_merge_rate == pytest.approx(0.8, abs=1e-3)
    assert split.false_merge_rate == pytest.approx(0.4, abs=0.01)


def test_choose_tau_edges() -> None:
    # Rate 0 with the largest score a different-answer one: nothing observed is above it.
    choice = choose_tau([0.2, 0.7], [1, 0], "false_merge", 0.0)
    assert choice.tau == math.nextafter(0.7, math.inf)
    assert (choice.false_merge_rate, choice.same_merge_rate) == (0.0, 0.0)
    # Rate 1: every pair may merge, tau is the smallest score.
    assert choose_tau([0.2, 0.7], [1, 0], "false_merge", 1.0).tau == 0.2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_calibration([0.2, 0.8], [1, 1], "platt"), "both same-answer and different-answer"),
        (lambda: fit_calibration([0.2, 0.8], [0, 1], "beta"), "method must be one of"),
        (lambda: fit_calibration([0.2, 0.8, 0.3], [0, 1], "platt"), "differ in length"),
        (lambda: fit_calibration([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], "platt"), "anti-correlated"),
        (lambda: calibration_from_record({"method": "platt", "slope": 1.0}), "lacks key 'intercept'"),
        (lambda: calibration_from_record({"method": "beta"}), "unknown method"),
        (lambda: choose_tau([0.2, 0.8], [0, 1], "auroc"), "tau target"),
        (lambda: choose_tau([0.2, 0.8], [1, 1]), "needs same-answer and different-answer"),
        (lambda: TemperatureScaling(0.0), "temperature must be > 0"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_train_fits_calibration_records_it_and_load_scorer_applies_it(tmp_path) -> None:
    from test_train import make_cfg

    from deepprune.judge.calibration import CalibratedScorer
    from deepprune.judge.scorers import load_scorer
    from deepprune.train import train

    train(make_cfg(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "calibration.method=isotonic"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("val/ece", "val/ece_calibrated", "test/ece", "test/ece_calibrated"):
        assert 0.0 <= metrics[key] <= 1.0
    # isotonic is the best monotone fit of the validation pairs: it cannot be worse there than the raw score
    assert metrics["val/ece_calibrated"] <= metrics["val/ece"] + 1e-12
    assert metrics["calibration"]["method"] == "isotonic"
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((tmp_path / "export" / "deepprune_judge.json").read_text())
    cal = calibration_from_record(record["calibration"])
    assert isinstance(cal, IsotonicCalibration)
    assert record["tau_auto"]["target"] == "same_split" and record["tau_auto"]["rate"] == 0.2
    pairs = record["validation_pairs"]
    assert len(pairs["scores"]) == len(pairs["labels"]) == metrics["calibration"]["validation_pairs"]
    # the recorded threshold is the one choose_tau gives on the recorded (calibrated) validation scores
    assert choose_tau(pairs["scores"], pairs["labels"], "same_split", 0.2).tau == record["tau_auto"]["tau"]
    # every scorer loading the export scores calibrated probabilities: the raw head's scores through the map
    scorer = load_scorer(tmp_path / "export")
    assert isinstance(scorer, CalibratedScorer)
    texts = [("we try case 1 and the answer is odd", "we try case 2 and the answer is even")] * 2
    np.testing.assert_allclose(scorer.score(texts), cal.apply(scorer.scorer.score(texts)))
    assert scorer.record == scorer.scorer.record  # other attributes are the wrapped scorer's


def test_calibrated_scorer_passes_other_attributes_through() -> None:
    from deepprune.judge.calibration import CalibratedScorer, calibrated_scorer

    class Raw:
        order_invariant = True

        def score(self, pairs):
            return np.full(len(pairs), 0.5)

    raw = Raw()
    assert calibrated_scorer(raw, {}) is raw
    assert calibrated_scorer(raw, {"calibration": {"method": "identity"}}) is raw
    wrapped = calibrated_scorer(raw, {"calibration": PlattScaling(1.0, math.log(3)).to_record()})
    assert isinstance(wrapped, CalibratedScorer) and wrapped.order_invariant
    # logit(0.5) = 0, so the score is sigmoid(ln 3) = 3/4
    assert wrapped.score([("a", "b")]) == pytest.approx([0.75])
    assert wrapped.score([]).shape == (0,)
