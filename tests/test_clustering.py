"""Greedy clustering (paper section 4.2.1): thresholds, the K limit, K1 sampling, ties, judge accounting."""

from __future__ import annotations

import numpy as np
import pytest

from deepprune.online.clustering import greedy_cluster
from deepprune.online.generators.base import TraceState
from deepprune.online.judges import ConstantJudge


def states(n: int, tokens: int = 10) -> list[TraceState]:
    return [TraceState(index=i, seed=i, text=f"t{i}", num_tokens=tokens) for i in range(n)]


class MatrixJudge:
    """Scores from a fixed matrix indexed by trace index; records every batch it was asked."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m
        self.batches: list[list[tuple[int, int]]] = []

    def attach(self, generator) -> None:
        pass

    def score(self, pairs):
        self.batches.append([(a.index, b.index) for a, b in pairs])
        return np.array([self.m[a.index, b.index] for a, b in pairs])

    def input_tokens(self, pairs) -> int:
        return sum(a.num_tokens + b.num_tokens for a, b in pairs)


def test_tau_zero_gives_one_cluster_and_counts_calls():
    rng = np.random.default_rng(1)
    judge = MatrixJudge(rng.random((30, 30)))
    res = greedy_cluster(states(30), judge, tau=0.0, max_clusters=16, k1=20, rng=np.random.default_rng(0))
    assert res.clusters == [list(range(30))]
    assert res.pruned == []
    # trace i meets one cluster of i members, of which min(20, i) are judged: 1+...+19 + 10*20
    assert res.judge_calls == 190 + 200
    assert res.judge_input_tokens == 20 * res.judge_calls
    assert res.judge_batches == 29 and len(judge.batches) == 29  # one batched call per arriving trace


def test_tau_above_one_gives_singletons_up_to_k_then_prunes():
    res = greedy_cluster(states(10), ConstantJudge(1.0), tau=1.01, max_clusters=4, k1=20)
    assert res.clusters == [[0], [1], [2], [3]]
    assert res.pruned == [4, 5, 6, 7, 8, 9]
    assert res.judge_calls == 1 + 2 + 3  # trace 4 onwards is never judged
    assert res.all_singletons


def test_clustering_ends_once_k_clusters_exist_even_if_later_traces_would_join():
    m = np.zeros((5, 5))
    m[3, 0] = m[4, 0] = 1.0  # traces 3 and 4 would join cluster 0
    res = greedy_cluster(states(5), MatrixJudge(m), tau=0.5, max_clusters=3, k1=20)
    assert res.clusters == [[0], [1], [2]]
    assert res.pruned == [3, 4]


def test_best_cluster_wins_and_ties_go_to_the_earlier_cluster():
    m = np.zeros((5, 5))
    m[2, 0] = m[2, 1] = 0.7  # tie between cluster 0 ({0}) and cluster 1 ({1})
    m[3, 1], m[3, 0] = 0.9, 0.6  # best is cluster 1
    m[4, 0] = m[4, 2] = 0.4  # below tau everywhere -> new cluster
    res = greedy_cluster(states(5), MatrixJudge(m), tau=0.5, max_clusters=16, k1=20)
    assert res.clusters == [[0, 2], [1, 3], [4]]
    assert res.largest() == 0  # equal sizes: the cluster opened first


def test_similarity_is_the_mean_over_the_cluster_sample_and_tau_is_inclusive():
    m = np.zeros((4, 4))
    m[1, 0] = 0.9  # 1 joins {0}
    m[2, 0], m[2, 1] = 1.0, 0.0  # mean 0.5 == tau: joins
    m[3, 0], m[3, 1], m[3, 2] = 0.8, 0.1, 0.0  # mean 0.3: opens a cluster
    res = greedy_cluster(states(4), MatrixJudge(m), tau=0.5, max_clusters=16, k1=20)
    assert res.clusters == [[0, 1, 2], [3]]
    assert res.judge_calls == 1 + 2 + 3


def test_k1_caps_and_seeds_the_member_sample():
    n, k1 = 12, 3
    judge = MatrixJudge(np.ones((n, n)))
    res = greedy_cluster(states(n), judge, tau=0.5, max_clusters=16, k1=k1, rng=np.random.default_rng(7))
    assert res.clusters == [list(range(n))]
    sizes = [len(b) for b in judge.batches]
    assert sizes == [1, 2, 3] + [3] * (n - 4)
    for i, batch in enumerate(judge.batches, start=1):
        members = [b for _, b in batch]
        assert len(set(members)) == len(members) and all(m < i for m in members)  # sampled without replacement
    again = MatrixJudge(np.ones((n, n)))
    greedy_cluster(states(n), again, tau=0.5, max_clusters=16, k1=k1, rng=np.random.default_rng(7))
    assert again.batches == judge.batches  # same seed, same samples


@pytest.mark.parametrize("kwargs", [{"tau": -0.1}, {"max_clusters": 0}, {"k1": 0}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        greedy_cluster(states(3), ConstantJudge(0.5), **kwargs)


def test_judge_returning_wrong_shape_is_reported():
    class Bad(MatrixJudge):
        def score(self, pairs):
            return np.zeros(len(pairs) + 1)

    with pytest.raises(ValueError, match="scores for"):
        greedy_cluster(states(3), Bad(np.zeros((3, 3))), tau=0.5)
