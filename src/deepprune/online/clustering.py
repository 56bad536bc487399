"""Greedy clustering of unfinished traces (paper section 4.2.1, design.md section 5, Table 6 defaults).

Traces arrive one by one (in the order given). For an arriving trace ``t`` and each existing cluster ``c``::

    sim(t, c) = mean judge score between t and p = min(K1, |c|) members of c sampled at random

All pairs of one arriving trace (every cluster's sample) go to the judge in ONE batched call. If the best
``sim`` reaches ``tau``, ``t`` joins that cluster; on a tie the cluster opened earlier wins (``argmax`` keeps
the first maximum). Otherwise ``t`` opens a new cluster. The first trace opens cluster 0 without a call.

The paper ("if K is reached, we will terminate the clustering process") reads two ways, chosen by ``when_full``:

- ``"prune"`` (the default, as before): once ``K`` clusters exist, clustering ends and the traces that have not
  arrived yet are pruned (never judged). Cheapest; but a judge that splits same-answer traces opens K clusters
  within a few arrivals, and the vote then rests on clusters of one or two traces.
- ``"assign"``: once ``K`` clusters exist, every later trace still joins its most similar cluster (whatever its
  ``sim``), without opening new ones. It costs judge calls for every arrival, and guards against that failure:
  the clusters keep growing with the judge's relative similarity, which a miscalibrated ``tau`` does not move.

Sampling uses a seeded ``numpy.random.Generator`` and only happens when a cluster holds more than ``K1``
members, so small problems are deterministic whatever the seed. ``tau`` may be any value >= 0 here (a tau
above 1 can never be reached, which gives singletons); the CLI restricts it to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deepprune.online.generators.base import TraceState
    from deepprune.online.judges import PairJudge

__all__ = ["ClusteringResult", "greedy_cluster", "WHEN_FULL"]

WHEN_FULL = ("prune", "assign")


@dataclass
class ClusteringResult:
    """Clusters as lists of positions into the input sequence, in the order they were opened."""

    clusters: list[list[int]]
    pruned: list[int] = field(default_factory=list)  # positions never clustered (arrived after K clusters existed)
    judge_calls: int = 0  # pair judgments
    judge_input_tokens: int = 0
    judge_batches: int = 0  # batched judge invocations (one per arriving trace that met a cluster)

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.clusters]

    def largest(self) -> int:
        """Index of the largest cluster; ties go to the cluster opened first."""
        return int(np.argmax(self.sizes))

    @property
    def all_singletons(self) -> bool:
        return all(len(c) == 1 for c in self.clusters)


def check_settings(tau: float, max_clusters: int, k1: int, when_full: str = "prune", prefix: str = "") -> None:
    """The one check of the clustering settings (``prefix``: how the caller's config names them, e.g. ``policy.``):
    tau >= 0 (above 1 it is never reached), K >= 1, K1 >= 1, ``when_full`` one of :data:`WHEN_FULL`."""
    from deepprune.validation import check_choice, check_int_at_least, check_number_in

    check_number_in(f"{prefix}tau", tau, 0.0, math.inf)
    check_int_at_least(f"{prefix}max_clusters", max_clusters, 1)
    check_int_at_least(f"{prefix}k1", k1, 1)
    check_choice(f"{prefix}when_full", when_full, WHEN_FULL)


def greedy_cluster(
    states: Sequence[TraceState],
    judge: PairJudge,
    tau: float = 0.5,
    max_clusters: int = 16,
    k1: int = 20,
    rng: np.random.Generator | None = None,
    when_full: str = "prune",
) -> ClusteringResult:
    """Cluster ``states`` (prefix snapshots, arrival order) with ``judge``; see the module docstring."""
    check_settings(tau, max_clusters, k1, when_full)
    rng = rng if rng is not None else np.random.default_rng(0)
    result = ClusteringResult(clusters=[])
    for pos, state in enumerate(states):
        full = len(result.clusters) >= max_clusters
        if full and when_full == "prune":
            result.pruned = list(range(pos, len(states)))
            break
        if not result.clusters:
            result.clusters.append([pos])
            continue
        pairs: list[tuple[TraceState, TraceState]] = []
        owner: list[int] = []
        for ci, members in enumerate(result.clusters):
            sample = members if len(members) <= k1 else sorted(rng.choice(members, size=k1, replace=False).tolist())
            pairs.extend((state, states[m]) for m in sample)
            owner.extend([ci] * len(sample))
        scores = np.asarray(judge.score(pairs), dtype=float)
        if scores.shape != (len(pairs),):
            raise ValueError(f"judge returned {scores.shape} scores for {len(pairs)} pairs")
        result.judge_calls += len(pairs)
        result.judge_input_tokens += judge.input_tokens(pairs)
        result.judge_batches += 1
        sims = np.bincount(owner, weights=scores) / np.bincount(owner)
        best = int(np.argmax(sims))
        if sims[best] >= tau or full:
            result.clusters[best].append(pos)
        else:
            result.clusters.append([pos])
    return result
