"""Training-set samplers for the pair DataModule.

- The Hydra `sampler=` group: a sampler factory takes the training labels (known only once the DataModule has
  built its pairs, hence `_partial_: true` in `conf/sampler/*.yaml`) and returns a `torch.utils.data.Sampler`, or
  None for plain shuffling. Under DDP Lightning wraps a custom sampler in its `DistributedSamplerWrapper`, so
  oversampling stays valid on several devices.
- Group batches (`data.group_batch_traces`): `GroupBatchSampler` yields whole batches of the pairs among a few
  traces of one (problem, model) group; `ShardedGroupBatches` splits its stream over DDP ranks.
- A mixture of sources (`deepprune.judge.mixture`): both `GroupBatchSampler` (given ``sources`` and ``weights``)
  and `SourceWeightedSampler` (random batches) first draw a source with probability proportional to its weight,
  then a group or a pair of it, so the shares of training batches follow the configured weights.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, Sampler


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


class GroupBatchSampler(Sampler[list[int]]):
    """Batches of all the pairs among a few traces of one (problem, model) group.

    Each batch draws a group (uniformly), then ``traces_per_batch`` of its traces, and holds every pair of the
    dataset between two drawn traces: C(k, 2) pairs from only k traces, so a bi-encoder, which embeds each
    distinct trace once per batch, learns from many pairs per forward pass, and every batch contrasts traces
    of one problem, which is the judge's task. Groups without a pair among the drawn traces are redrawn.

    Args:
        groups: the group key of every pair (dataset order).
        texts: the two (truncated) texts of every pair; a trace is identified by its text.
        traces_per_batch: k.
        num_batches: batches per epoch.
        seed: epoch e uses ``Random(f"{seed}-{e}")``, so the order is reproducible and differs between epochs.
        sources, weights: the source of every pair and each source's weight: a batch first draws a source with
            probability proportional to its weight, then one of its groups (a redraw stays in that source, so the
            shares follow the weights exactly in expectation). None: groups drawn uniformly over all.
    """

    def __init__(
        self,
        groups: Sequence[str],
        texts: Sequence[tuple[str, str]],
        traces_per_batch: int = 8,
        num_batches: int = 100,
        seed: int = 0,
        sources: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if traces_per_batch < 2:
            raise ValueError(f"data.group_batch_traces must be >= 2, got {traces_per_batch}")
        self.by_group: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            self.by_group.setdefault(g, []).append(i)
        self.keys = sorted(self.by_group)
        # a group's source is that of its first pair (groups never span sources)
        first_sources = [sources[self.by_group[k][0]] for k in self.keys] if sources else []
        self.draw = _SourceDraw(self.keys, first_sources, weights) if sources else None
        self.texts, self.k, self.num_batches, self.seed = texts, int(traces_per_batch), int(num_batches), seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        self.epoch += 1
        for _ in range(self.num_batches):
            yield self._batch(rng, self.keys if self.draw is None else self.draw.pick(rng))

    def _batch(self, rng: random.Random, keys: Sequence[str]) -> list[int]:
        while True:  # an empty draw is redrawn from the same keys (the same source, when drawing by source)
            members = self.by_group[rng.choice(keys)]
            traces = sorted({t for i in members for t in self.texts[i]})
            chosen = set(rng.sample(traces, min(self.k, len(traces))))
            batch = [i for i in members if self.texts[i][0] in chosen and self.texts[i][1] in chosen]
            if batch:
                return batch


class _SourceDraw:
    """Items (group keys, or pair indices) by source, and a draw of one source's items with probability
    proportional to the source's weight (seeded by the caller's generator)."""

    def __init__(self, items: Sequence[Any], sources: Sequence[str], weights: Mapping[str, float] | None) -> None:
        self.by_source: dict[str, list[Any]] = {}
        for item, source in zip(items, sources):
            self.by_source.setdefault(str(source), []).append(item)
        self.names = sorted(self.by_source)
        weights = weights or {}
        missing = [n for n in self.names if n not in weights]
        if missing:
            raise ValueError(f"no weight for source(s) {missing}; weights given: {dict(weights)}")
        self.weights = [float(weights[n]) for n in self.names]

    def pick(self, rng: random.Random) -> list[Any]:
        """The items of one source, drawn by weight."""
        (name,) = rng.choices(self.names, weights=self.weights)
        return self.by_source[name]


class SourceWeightedSampler(Sampler[int]):
    """Random training pairs of a mixture: each draw picks a source with probability proportional to its weight,
    then one of its pairs uniformly (with replacement). An epoch has as many draws as pairs; epoch e uses
    ``Random(f"{seed}-{e}")``."""

    def __init__(self, sources: Sequence[str], weights: Mapping[str, float], seed: int = 0) -> None:
        self.n = len(sources)
        self.draw = _SourceDraw(range(self.n), sources, weights)
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        self.epoch += 1
        for _ in range(self.n):
            yield rng.choice(self.draw.pick(rng))


class ShardedGroupBatches(IterableDataset):
    """One rank's share of a `GroupBatchSampler` stream under DDP, as collated batches.

    Every rank draws the same seeded stream; batch i goes to rank ``i % world_size``, and each rank yields
    ``len(sampler) // world_size`` batches, so ranks step in lockstep and together see the single-device epoch
    (as `DistributedSampler` splits a dataset). An iterable, because Lightning would otherwise try to inject its
    own distributed sampler into the batch sampler, which it cannot do for this one.
    """

    def __init__(
        self, dataset: Dataset, sampler: GroupBatchSampler, collate: Callable, rank: int, world_size: int
    ) -> None:
        self.dataset, self.sampler, self.collate = dataset, sampler, collate
        self.rank, self.world_size = int(rank), int(world_size)

    def __len__(self) -> int:
        return len(self.sampler) // self.world_size

    def __iter__(self) -> Iterator[dict]:
        made, wanted = 0, len(self)
        for i, batch in enumerate(self.sampler):
            if made == wanted:
                break
            if i % self.world_size == self.rank:
                made += 1
                yield self.collate([self.dataset[j] for j in batch])
