"""Samplers: plain returns None; oversample hits the hand-computed minority share with a fixed seed; group batches
hold every pair among the drawn traces of one group."""

from collections import Counter

import pytest

from deepprune.judge.samplers import GroupBatchSampler, OversampleSampler, oversample, plain

LABELS = [1] * 30 + [0] * 70  # same-answer pairs are the minority, as in champ


def test_plain_returns_none():
    assert plain(LABELS) is None


def test_oversample_factor2_share_and_coverage():
    sampler = oversample(LABELS, factor=2.0, seed=7)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 70 + 2 * 30
    share = sum(LABELS[i] == 1 for i in indices) / len(indices)
    assert share == pytest.approx(60 / 130, abs=0.01)  # target by hand: 2 * 30 / (70 + 2 * 30)
    counts = Counter(indices)
    assert all(counts[i] == 2 for i in range(30)) and all(counts[i] == 1 for i in range(30, 100))


def test_oversample_fractional_factor_and_majority_positive():
    labels = [1] * 80 + [0] * 20  # the paper's case: different-answer pairs are the minority
    sampler = OversampleSampler(labels, factor=1.5, seed=0)
    indices = list(sampler)
    assert sampler.minority_label == 0
    assert len(indices) == 80 + 30
    assert sum(labels[i] == 0 for i in indices) / len(indices) == pytest.approx(30 / 110, abs=0.01)


def test_oversample_is_seeded_and_reshuffles_per_epoch():
    a, b = oversample(LABELS, seed=3), oversample(LABELS, seed=3)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b
    assert list(a) != first_a  # the next epoch has a new order
    assert sorted(list(a)) == sorted(first_a)
    assert list(oversample(LABELS, seed=4)) != first_b


def test_oversample_rejects_factor_below_one():
    with pytest.raises(ValueError, match="factor"):
        oversample(LABELS, factor=0.5)


def test_group_batches_hold_every_pair_among_drawn_traces():
    texts, groups = [], []
    for g in ("g1", "g2"):
        names = [f"{g}-t{i}" for i in range(5)]
        for i in range(5):
            for j in range(i + 1, 5):
                texts.append((names[i], names[j]))
                groups.append(g)
    sampler = GroupBatchSampler(groups, texts, traces_per_batch=3, num_batches=7, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    for batch in batches:
        assert len({groups[i] for i in batch}) == 1
        drawn = {t for i in batch for t in texts[i]}
        assert len(drawn) == 3 and len(batch) == 3  # C(3, 2): all pairs among the 3 drawn traces
    again = GroupBatchSampler(groups, texts, traces_per_batch=3, num_batches=7, seed=1)
    assert list(again) == batches and list(again) != batches  # reproducible, and each epoch differs
