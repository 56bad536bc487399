"""Which traces finish after clustering and how their answers are voted (``conf/aggregation/``).

An aggregation has two steps around the continuation phase: :meth:`select` picks the finishers from the
clustering (positions in arrival order), and :meth:`vote` turns the finishers' final answers into one answer.
Each option guards against one way an imperfect judge ruins the paper's rule:

- :class:`LargestClusterVote` (**the paper's rule**, section 4.2.2, the default): the first-arrived
  ``min(|c|, K2)`` members of the largest cluster (ties: the cluster opened first) finish; when every cluster is a
  singleton the judge is presumably wrong and ``K3`` traces sampled (seeded) from all N finish instead. Majority
  vote over the finishers. Guards against nothing beyond the all-singleton case: a judge that splits the
  consensus answer over several clusters lets a smaller cluster of another answer win.
- :class:`SizeWeightedVote`: the first ``per_cluster`` members of each of the ``clusters`` largest clusters
  finish; each cluster's answer (majority of its finishers) is weighted by the cluster's size. Guards against the
  consensus being split over several clusters (their sizes add up again when their answers agree) and against a
  wrongly merged cluster whose first members carry a minority answer.
- ``min_finishers`` on either (``conf/aggregation/floor.yaml``): a floor on the number of finishers; when the
  selection has fewer, members of the next-largest clusters (then pruned traces) finish too, in arrival order.
  Guards against a vote resting on one or two traces when the largest cluster is tiny (a judge splitting
  same-answer traces opens K clusters within a few arrivals).

A :class:`Selection` keeps the finishers grouped by cluster with each group's weight, so the vote needs only the
finishers' answers. Sampling uses the caller's ``numpy.random.Generator`` (the policy's, after clustering), so a
problem's seed fixes the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from deepprune.answers import AnswerClasses
from deepprune.online.clustering import ClusteringResult
from deepprune.online.voting import VoteResult, majority_vote, weighted_vote

Checker = AnswerClasses | None  # the votes' answer checker (None: the default one)

__all__ = ["Aggregation", "Selection", "LargestClusterVote", "SizeWeightedVote"]


@dataclass
class Selection:
    """The finishers (positions into the N traces), grouped by the cluster they came from."""

    groups: list[list[int]]
    weights: list[float]  # one per group: the size of its cluster (1.0 for traces from outside any cluster)
    rule: str  # "k2" (largest cluster), "k3" (all singletons), "clusters" (size-weighted); "+floor" if filled
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finishers(self) -> list[int]:
        return [i for g in self.groups for i in g]


class Aggregation(Protocol):
    name: str

    def select(self, clustering: ClusteringResult, n: int, rng: np.random.Generator) -> Selection: ...

    def vote(self, selection: Selection, answers: Sequence[str | None], checker: Checker = None) -> VoteResult: ...


def _by_size(clustering: ClusteringResult) -> list[int]:
    """Cluster indices, largest first; ties: the cluster opened first."""
    return sorted(range(len(clustering.clusters)), key=lambda c: (-len(clustering.clusters[c]), c))


def _check_positive(**values: int | None) -> None:
    for key, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"aggregation.{key} must be >= 1, got {value}")


class _Aggregation:
    """Shared by the options: the all-singleton fallback (K3) and the finisher floor."""

    name = "aggregation"

    def __init__(self, k3: int, min_finishers: int) -> None:
        _check_positive(k3=k3)
        if min_finishers < 0:
            raise ValueError(f"aggregation.min_finishers must be >= 0, got {min_finishers}")
        self.k3, self.min_finishers = k3, min_finishers

    def _singletons(self, n: int, rng: np.random.Generator) -> Selection:
        k = min(self.k3, n)
        chosen = sorted(rng.choice(n, size=k, replace=False).tolist())
        return Selection([chosen], [1.0], "k3")

    def _choose(self, clustering: ClusteringResult, rng: np.random.Generator) -> Selection:
        raise NotImplementedError

    def select(self, clustering: ClusteringResult, n: int, rng: np.random.Generator) -> Selection:
        if not clustering.clusters:
            raise ValueError("aggregation needs at least one cluster (no trace was clustered)")
        if clustering.all_singletons:
            selection = self._singletons(n, rng)
        else:
            selection = self._choose(clustering, rng)
        return self._floor(selection, clustering, n)

    def _floor(self, selection: Selection, clustering: ClusteringResult, n: int) -> Selection:
        missing = self.min_finishers - len(selection.finishers)
        if missing <= 0:
            return selection
        taken = set(selection.finishers)
        # Fill from the largest clusters first (their members join that cluster's group), then unclustered traces.
        group_of = {}
        for gi, g in enumerate(selection.groups):
            for i in g:
                group_of.setdefault(self._cluster_of(clustering, i), gi)
        for c in _by_size(clustering):
            for i in clustering.clusters[c]:
                if missing and i not in taken:
                    if c not in group_of:
                        selection.groups.append([])
                        selection.weights.append(float(len(clustering.clusters[c])))
                        group_of[c] = len(selection.groups) - 1
                    selection.groups[group_of[c]].append(i)
                    taken.add(i)
                    missing -= 1
        for i in range(n):
            if missing and i not in taken:
                selection.groups.append([i])
                selection.weights.append(1.0)
                taken.add(i)
                missing -= 1
        selection.rule += "+floor"
        return selection

    @staticmethod
    def _cluster_of(clustering: ClusteringResult, pos: int) -> int | None:
        for c, members in enumerate(clustering.clusters):
            if pos in members:
                return c
        return None

    def vote(self, selection: Selection, answers: Sequence[str | None], checker: Checker = None) -> VoteResult:
        raise NotImplementedError


class LargestClusterVote(_Aggregation):
    """The paper's rule: ``min(|c|, K2)`` first-arrived members of the largest cluster finish; majority vote.

    All clusters singletons: ``K3`` traces sampled from all N finish. ``answers`` given to :meth:`vote` are the
    finishers' answers in :attr:`Selection.finishers` order.
    """

    def __init__(self, k2: int = 20, k3: int = 32, min_finishers: int = 0, name: str = "largest_cluster") -> None:
        super().__init__(k3, min_finishers)
        _check_positive(k2=k2)
        self.k2 = k2
        self.name = name

    def _choose(self, clustering: ClusteringResult, rng: np.random.Generator) -> Selection:
        largest = clustering.largest()
        members = clustering.clusters[largest]
        return Selection([members[: self.k2]], [float(len(members))], "k2")

    def vote(self, selection: Selection, answers: Sequence[str | None], checker: Checker = None) -> VoteResult:
        if len(answers) != len(selection.finishers):
            raise ValueError(f"{len(answers)} answers for {len(selection.finishers)} finishers")
        return majority_vote(list(answers), checker)


class SizeWeightedVote(_Aggregation):
    """``per_cluster`` first-arrived members of each of the ``clusters`` largest clusters finish; each cluster's
    answer (majority of its finishers, ties: the earliest) votes with the cluster's size as weight.

    ``clusters=None`` takes every cluster. All clusters singletons: the ``K3`` fallback, majority vote.
    """

    def __init__(
        self,
        per_cluster: int = 2,
        clusters: int | None = None,
        k3: int = 32,
        min_finishers: int = 0,
        name: str = "size_weighted",
    ) -> None:
        super().__init__(k3, min_finishers)
        _check_positive(per_cluster=per_cluster, clusters=clusters)
        self.per_cluster, self.clusters = per_cluster, clusters
        self.name = name

    def _choose(self, clustering: ClusteringResult, rng: np.random.Generator) -> Selection:
        order = _by_size(clustering)[: self.clusters]
        groups = [clustering.clusters[c][: self.per_cluster] for c in order]
        weights = [float(len(clustering.clusters[c])) for c in order]
        return Selection(groups, weights, "clusters")

    def vote(self, selection: Selection, answers: Sequence[str | None], checker: Checker = None) -> VoteResult:
        if len(answers) != len(selection.finishers):
            raise ValueError(f"{len(answers)} answers for {len(selection.finishers)} finishers")
        if selection.rule.startswith("k3"):
            return majority_vote(list(answers), checker)
        # Each group's answer is its majority; the groups then vote with their clusters' sizes.
        cluster_answers: list[str | None] = []
        start = 0
        for g in selection.groups:
            cluster_answers.append(majority_vote(list(answers[start : start + len(g)]), checker).answer)
            start += len(g)
        return weighted_vote(cluster_answers, selection.weights, checker)
