"""Pair-classification losses for the judge: cross-entropy and focal loss.

Both are `nn.Module`s with the same call, `loss(logits[B, 2], labels[B]) -> scalar` (mean over the
batch), so a Hydra `loss=` group swaps them (`conf/loss/{ce,focal}.yaml`). Column 1 of the logits and
label 1 mean "same final answer" (the positive class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.Module):
    """Plain cross-entropy over the two classes, averaged over the batch."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels.long())


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017) for the two-class judge.

    ``FL(p_t) = -alpha_t * (1 - p_t) ** gamma * log(p_t)`` where ``p_t`` is the probability given to
    the true class. As in Lin et al., ``alpha`` weights the positive class (label 1, "same answer") and
    ``1 - alpha`` the negative class, so the paper's default ``alpha = 0.25`` down-weights same-answer
    pairs, the majority class in the paper's data (about 80 %), and focuses training on different-answer
    pairs. ``alpha=None`` disables the weighting (``alpha_t = 1``); with ``gamma=0`` and ``alpha=None``
    this is exactly cross-entropy.

    Args:
        gamma: focusing parameter; larger values down-weight easy (confident, correct) pairs more.
        alpha: weight of the positive class in [0, 1], or None for no class weighting.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"FocalLoss: gamma must be >= 0, got {gamma}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"FocalLoss: alpha must be in [0, 1] or None, got {alpha}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.long()
        log_p_t = F.log_softmax(logits.float(), dim=-1).gather(1, labels.unsqueeze(1)).squeeze(1)
        # (1 - p_t) ** 0 must be 1 even where p_t == 1, hence the explicit branch
        focal = -log_p_t if self.gamma == 0 else -((1.0 - log_p_t.exp()) ** self.gamma) * log_p_t
        if self.alpha is not None:
            alpha_t = torch.where(labels == 1, self.alpha, 1.0 - self.alpha).to(focal.dtype)
            focal = alpha_t * focal
        return focal.mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"
