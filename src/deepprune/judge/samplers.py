"""Training-set samplers for the pair DataModule, selected by the Hydra `sampler=` group.

A sampler factory takes the training labels (known only once the DataModule has built its pairs, hence
`_partial_: true` in `conf/sampler/*.yaml`) and returns a `torch.utils.data.Sampler`, or None for plain
shuffling. Under DDP Lightning wraps a custom sampler in its `DistributedSamplerWrapper`, so
oversampling stays valid on several devices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def plain(labels: Sequence[int]) -> None:
    """No custom sampler: the DataModule shuffles the training pairs each epoch."""
    return None


class OversampleSampler(Sampler[int]):
    """Repeat every minority-class index `factor` times, keep every majority index once, shuffle.

    The minority class is whichever label is rarer in `labels` (same-answer pairs in the paper's data,
    different-answer pairs in ours; ties count label 1 as minority). Each epoch lists every majority index
    once and every minority index ``floor(factor)`` times, plus a seeded random subset of
    ``round((factor % 1) * n_minority)`` minority indices for a fractional factor, all in a fresh seeded
    order. So one epoch has ``n_majority + round(factor * n_minority)`` items, no majority pair is dropped,
    and the minority share is exactly ``round(factor * m) / (M + round(factor * m))``.
    The order is reproducible: epoch e uses the generator seeded with ``seed`` advanced e times.
    """

    def __init__(self, labels: Sequence[int], factor: float = 2.0, seed: int = 0) -> None:
        if factor < 1:
            raise ValueError(f"oversample: factor must be >= 1, got {factor}")
        labels_t = torch.as_tensor(list(labels), dtype=torch.long)
        pos = torch.nonzero(labels_t == 1).flatten()
        neg = torch.nonzero(labels_t != 1).flatten()
        self.minority, self.majority = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
        self.minority_label = 1 if len(pos) <= len(neg) else 0
        self.factor = float(factor)
        self.extra = round((self.factor - math.floor(self.factor)) * len(self.minority))
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.majority) + math.floor(self.factor) * len(self.minority) + self.extra

    def __iter__(self) -> Iterator[int]:
        parts = [self.majority, self.minority.repeat(math.floor(self.factor))]
        if self.extra:
            parts.append(self.minority[torch.randperm(len(self.minority), generator=self.generator)[: self.extra]])
        indices = torch.cat(parts)
        yield from indices[torch.randperm(len(indices), generator=self.generator)].tolist()


def oversample(labels: Sequence[int], factor: float = 2.0, seed: int = 0) -> OversampleSampler:
    """Oversample the minority class by `factor` (2 as in the paper); see `OversampleSampler`."""
    return OversampleSampler(labels, factor=factor, seed=seed)
