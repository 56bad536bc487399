"""Bootstrap intervals: hand-computed resampling distributions, zero width for constants, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepprune.stats import (
    Interval,
    bootstrap_ci,
    clustered_bootstrap_ci,
    paired_diff_ci,
    ratio_reduction_ci,
    resample_blocks,
)


def test_constant_outcome_has_zero_width() -> None:
    ci = bootstrap_ci([1.0] * 30)
    assert ci == Interval(1.0, 1.0, 1.0, 0.95)
    assert ci.width == 0.0
    ci = clustered_bootstrap_ci(np.full((30, 8), 0.25))
    assert (ci.mean, ci.low, ci.high) == (0.25, 0.25, 0.25)


def test_two_values_follow_the_hand_computed_resampling_distribution() -> None:
    # Resampling [0, 1] twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% quantiles are 0 and 1, the 30% and 70% quantiles both 0.5.
    assert bootstrap_ci([0.0, 1.0]) == Interval(0.5, 0.0, 1.0, 0.95)
    assert bootstrap_ci([0.0, 1.0], level=0.4) == Interval(0.5, 0.5, 0.5, 0.4)


def test_resample_blocks_are_the_one_draw_per_resample_stream() -> None:
    blocks = list(resample_blocks(7, n_boot=600, seed=3))
    assert [b.shape for b in blocks] == [(256, 7), (256, 7), (88, 7)]
    rng = np.random.default_rng(3)
    assert np.array_equal(np.concatenate(blocks), np.stack([rng.integers(0, 7, 7) for _ in range(600)]))
    with pytest.raises(ValueError, match="n_boot must be >= 1, got 0"):
        resample_blocks(7, n_boot=0)
    with pytest.raises(ValueError, match=r"no rows to resample \(n=0\)"):
        resample_blocks(0)


def test_literal_interval_of_a_fixed_sample() -> None:
    # Pinned: the draws are numpy's default_rng(0) in blocks of 256; a change here changes every table.
    ci = bootstrap_ci([0, 1, 1, 0, 1, 1, 1, 0, 1, 1])
    assert ci.mean == 0.7
    assert (ci.low, ci.high) == (0.4, 1.0)
    assert str(ci) == "0.700 [0.400, 1.000]"


def test_interval_matches_the_normal_approximation_on_a_large_sample() -> None:
    rng = np.random.default_rng(5)
    values = (rng.random(400) < 0.3).astype(float)
    ci = bootstrap_ci(values, n_boot=4000)
    se = values.std() / math.sqrt(len(values))
    assert ci.low == pytest.approx(values.mean() - 1.96 * se, abs=0.006)
    assert ci.high == pytest.approx(values.mean() + 1.96 * se, abs=0.006)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    values = np.random.default_rng(1).random((30, 8))
    assert clustered_bootstrap_ci(values, seed=3) == clustered_bootstrap_ci(values, seed=3)
    assert clustered_bootstrap_ci(values, seed=3) != clustered_bootstrap_ci(values, seed=4)


def test_clustered_resamples_problems_and_averages_orders() -> None:
    # Every problem averages 0.5 over its orders: resampling problems cannot move the mean,
    # whereas the 4 cells as independent outcomes would give a wide interval.
    m = [[0.0, 1.0], [1.0, 0.0]]
    assert clustered_bootstrap_ci(m) == Interval(0.5, 0.5, 0.5, 0.95)
    assert bootstrap_ci([0.0, 1.0, 1.0, 0.0]).width > 0.5
    # Same as the plain bootstrap of the per-problem means, with the same seed.
    values = np.random.default_rng(2).random((12, 5))
    assert clustered_bootstrap_ci(values, seed=7) == bootstrap_ci(values.mean(axis=1), seed=7)


def test_paired_difference() -> None:
    rng = np.random.default_rng(3)
    b = (rng.random((30, 8)) < 0.5).astype(float)
    # A constant shift per (problem, order) has a zero-width difference whatever b's spread.
    assert paired_diff_ci(b + 0.1, b) == Interval(pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1))
    # The difference equals the clustered interval of a - b (same resampling), and pairing narrows it.
    a = np.where(rng.random((30, 8)) < 0.1, 1 - b, b)
    assert paired_diff_ci(a, b, seed=2) == clustered_bootstrap_ci(a - b, seed=2)
    unpaired = clustered_bootstrap_ci(a, seed=2).width + clustered_bootstrap_ci(b, seed=2).width
    assert paired_diff_ci(a, b, seed=2).width < unpaired / 2


def test_ratio_reduction_is_a_ratio_of_totals() -> None:
    # Half the tokens on every problem: reduction 0.5 exactly, zero width.
    ref = np.random.default_rng(4).integers(100, 1000, size=(10, 3)).astype(float)
    assert ratio_reduction_ci(ref / 2, ref) == Interval(0.5, 0.5, 0.5, 0.95)
    # Two problems (0 of 10 tokens, 10 of 10): resamples give 1, 0.5 or 0 with probabilities 1/4, 1/2, 1/4.
    assert ratio_reduction_ci([0.0, 10.0], [10.0, 10.0]) == Interval(0.5, 0.0, 1.0, 0.95)
    assert ratio_reduction_ci([0.0, 10.0], [10.0, 10.0], level=0.4) == Interval(0.5, 0.5, 0.5, 0.4)
    # Totals, not mean of ratios: 1 - (10 + 10) / (20 + 100) = 5/6, while the mean of ratios is 0.7.
    assert ratio_reduction_ci([10.0, 10.0], [20.0, 100.0]).mean == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bootstrap_ci([]), "empty"),
        (lambda: bootstrap_ci([1.0, float("nan")]), "non-finite"),
        (lambda: bootstrap_ci([[1.0]]), "1-D"),
        (lambda: bootstrap_ci([1.0], level=1.0), "level"),
        (lambda: bootstrap_ci([1.0], n_boot=0), "n_boot"),
        (lambda: paired_diff_ci([[1.0, 0.0]], [[1.0]]), "paired"),
        (lambda: ratio_reduction_ci([1.0], [0.0]), "sum to 0"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_seed_interval_is_the_student_t_interval() -> None:
    from deepprune.stats import seed_interval

    ci = seed_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303
    assert (
        ci.mean == 2.0
        and ci.low == pytest.approx(2 - 4.303 / 3**0.5)
        and ci.high == pytest.approx(2 + 2.4843, abs=1e-4)
    )
    assert seed_interval([0.7]).width == 0.0
    with pytest.raises(ValueError, match="seed_interval"):
        seed_interval([])
