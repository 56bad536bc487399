"""Losses: focal(gamma=0, alpha=None) equals cross-entropy; hand-computed focal values; alpha direction."""

import math

import pytest
import torch

from deepprune.judge.losses import CrossEntropyLoss, FocalLoss

LOGITS = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [2.0, -1.0], [-0.5, 1.5]])
LABELS = torch.tensor([1, 0, 0, 1])


def test_focal_gamma0_no_alpha_equals_ce():
    ce = CrossEntropyLoss()(LOGITS, LABELS)
    focal = FocalLoss(gamma=0.0, alpha=None)(LOGITS, LABELS)
    torch.testing.assert_close(focal, ce)
    # and both equal the literal mean of -log softmax of the true class
    expected = -torch.log_softmax(LOGITS, -1)[torch.arange(4), LABELS].mean()
    torch.testing.assert_close(ce, expected)


def test_focal_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    labels = torch.tensor([1, 0])
    # row 0: p_t = 1/2, positive -> alpha_t = 0.25: 0.25 * 0.5**2 * ln 2
    # row 1: p(same) = 3/4, label 0 -> p_t = 1/4, alpha_t = 0.75: 0.75 * 0.75**2 * ln 4
    expected = (0.25 * 0.25 * math.log(2.0) + 0.75 * 0.5625 * math.log(4.0)) / 2
    assert FocalLoss(gamma=2.0, alpha=0.25)(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.3140823, rel=1e-6)


def test_focal_alpha_weights_positive_class():
    logits = torch.zeros(2, 2)
    pos, neg = torch.tensor([1, 1]), torch.tensor([0, 0])
    loss = FocalLoss(gamma=2.0, alpha=0.25)
    # identical probabilities, so the ratio is exactly alpha / (1 - alpha)
    assert (loss(logits, pos) / loss(logits, neg)).item() == pytest.approx(0.25 / 0.75)
    assert loss(logits, pos) < loss(logits, neg)
    flipped = FocalLoss(gamma=2.0, alpha=0.75)
    assert flipped(logits, pos) > flipped(logits, neg)


def test_focal_downweights_easy_examples_and_has_finite_grads():
    logits = torch.tensor([[-4.0, 4.0], [0.2, -0.2]], requires_grad=True)
    labels = torch.tensor([1, 1])
    per_ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    f = FocalLoss(gamma=2.0, alpha=None)
    easy, hard = (f(logits[i : i + 1], labels[i : i + 1]) for i in range(2))
    assert easy / per_ce[0] < hard / per_ce[1]  # the confident, correct pair loses more weight
    f(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()


def test_focal_rejects_bad_parameters():
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
