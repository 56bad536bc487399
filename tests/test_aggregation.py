"""Aggregation options on hand-made clusterings (literal finishers and votes), and greedy clustering once K is full."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from deepprune.answers import get_checker
from deepprune.online.aggregation import LargestClusterVote, Selection, SizeWeightedVote
from deepprune.online.clustering import ClusteringResult, greedy_cluster
from deepprune.online.generators.base import TraceState

# Arrival positions 0..9 and their final answers: "7" is the consensus (5 of 10, written two ways), "3" has 4.
ANSWERS = ["7", "3", "7", "3", "14/2", "3", "3", "7", "7.0", "5"]
# The judge split the "7" traces over clusters 0 and 2 and kept the "3" traces together.
SPLIT = ClusteringResult(clusters=[[0, 2, 7], [1, 3, 5, 6], [4, 8], [9]])


def _vote(agg, clustering: ClusteringResult, n: int = 10, seed: int = 0) -> tuple[Selection, str | None]:
    selection = agg.select(clustering, n, np.random.default_rng(seed))
    answers = [ANSWERS[i] for i in selection.finishers]
    return selection, agg.vote(selection, answers, get_checker()).answer


def test_largest_cluster_vote_is_the_papers_rule() -> None:
    # Largest cluster: 1 (4 members); its first-arrived K2 = 3 finish and vote "3".
    selection, answer = _vote(LargestClusterVote(k2=3, k3=4), SPLIT)
    assert selection.finishers == [1, 3, 5]
    assert selection.rule == "k2"
    assert answer == "3"


def test_size_weighted_vote_adds_up_a_split_consensus() -> None:
    # Two finishers per cluster, largest first: cluster answers "3" (size 4), "7" (3), "7" (2), "5" (1).
    # "7" weighs 3 + 2 = 5 against "3"'s 4: the consensus answer wins although its clusters are smaller.
    selection, answer = _vote(SizeWeightedVote(per_cluster=2), SPLIT)
    assert selection.groups == [[1, 3], [0, 2], [4, 8], [9]]
    assert selection.weights == [4.0, 3.0, 2.0, 1.0]
    assert selection.rule == "clusters"
    assert answer == "7"
    # Only the two largest clusters: "3" (4) beats "7" (3).
    selection, answer = _vote(SizeWeightedVote(per_cluster=2, clusters=2), SPLIT)
    assert selection.finishers == [1, 3, 0, 2]
    assert answer == "3"


def test_size_weighted_cluster_answer_is_its_finishers_majority() -> None:
    # Cluster 0 wrongly merged a "3" first: its three finishers "3", "7", "7" give it the answer "7".
    merged = ClusteringResult(clusters=[[1, 0, 2], [3, 5]])
    selection, answer = _vote(SizeWeightedVote(per_cluster=3), merged)
    assert selection.groups == [[1, 0, 2], [3, 5]]
    assert answer == "7"
    # The paper's rule lets the same cluster's first K2 = 1 member decide: "3".
    assert _vote(LargestClusterVote(k2=1), merged)[1] == "3"


def test_finisher_floor_fills_from_the_next_largest_clusters() -> None:
    # A judge that splits: a tiny largest cluster of "3" and singletons of "7"; K = 6 pruned traces 6..9.
    tiny = ClusteringResult(clusters=[[1, 3], [0], [2], [4], [7], [8]], pruned=[5, 6, 9])
    selection, answer = _vote(LargestClusterVote(k2=6), tiny)
    assert (selection.finishers, answer) == ([1, 3], "3")
    # Floor of 5: clusters 1, 2, 3 (singletons, in opening order) finish too; "7" has 3 of 5 votes.
    selection, answer = _vote(LargestClusterVote(k2=6, min_finishers=5), tiny)
    assert selection.finishers == [1, 3, 0, 2, 4]
    assert selection.rule == "k2+floor"
    assert answer == "7"
    # A floor above the clustered traces reaches the pruned ones, in arrival order.
    selection = LargestClusterVote(k2=6, min_finishers=9).select(tiny, 10, np.random.default_rng(0))
    assert selection.finishers == [1, 3, 0, 2, 4, 7, 8, 5, 6]
    # Floor of the size-weighted vote: added members join their cluster's group.
    one = SizeWeightedVote(per_cluster=1, clusters=1, min_finishers=3)
    selection = one.select(SPLIT, 10, np.random.default_rng(0))
    assert selection.groups == [[1, 3, 5]]
    assert selection.weights == [4.0]


def test_all_singletons_sample_k3_from_all_traces() -> None:
    singles = ClusteringResult(clusters=[[0], [1], [2]], pruned=list(range(3, 10)))
    expected = sorted(np.random.default_rng(5).choice(10, size=4, replace=False).tolist())
    for agg in (LargestClusterVote(k3=4), SizeWeightedVote(k3=4)):
        selection = agg.select(singles, 10, np.random.default_rng(5))
        assert selection.rule == "k3"
        assert selection.finishers == expected
    # K3 above N: every trace finishes.
    assert LargestClusterVote(k3=32).select(singles, 10, np.random.default_rng(0)).finishers == list(range(10))


def test_the_vote_checks_its_answers_and_the_options_their_arguments() -> None:
    selection = LargestClusterVote(k2=3).select(SPLIT, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 answers for 3 finishers"):
        LargestClusterVote(k2=3).vote(selection, ["3", "3"])
    with pytest.raises(ValueError, match="aggregation.k2 must be >= 1"):
        LargestClusterVote(k2=0)
    with pytest.raises(ValueError, match="aggregation.per_cluster must be >= 1"):
        SizeWeightedVote(per_cluster=0)
    with pytest.raises(ValueError, match="min_finishers must be >= 0"):
        SizeWeightedVote(min_finishers=-1)
    with pytest.raises(ValueError, match="at least one cluster"):
        LargestClusterVote().select(ClusteringResult(clusters=[]), 0, np.random.default_rng(0))


class MatrixJudge:
    """Scores from a fixed matrix indexed by trace index."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m

    def score(self, pairs):
        return np.array([self.m[a.index, b.index] for a, b in pairs])

    def input_tokens(self, pairs) -> int:
        return sum(a.num_tokens + b.num_tokens for a, b in pairs)


def _states(n: int) -> list[TraceState]:
    return [TraceState(index=i, seed=i, text=f"t{i}", num_tokens=10) for i in range(n)]


def test_greedy_cluster_when_full_prune_or_assign() -> None:
    m = np.zeros((6, 6))
    m[3, 0] = m[4, 0] = 1.0  # traces 3 and 4 match cluster 0
    m[5, 2] = 0.2  # trace 5 matches nothing at tau 0.5, cluster 2 best
    judge = MatrixJudge(m)
    pruned = greedy_cluster(_states(6), judge, tau=0.5, max_clusters=3, k1=20)
    assert (pruned.clusters, pruned.pruned) == ([[0], [1], [2]], [3, 4, 5])
    assert pruned.judge_calls == 1 + 2
    kept = greedy_cluster(_states(6), judge, tau=0.5, max_clusters=3, k1=20, when_full="assign")
    # Once 3 clusters exist, every later trace joins its most similar one, even below tau; none is pruned.
    assert (kept.clusters, kept.pruned) == ([[0, 3, 4], [1], [2, 5]], [])
    assert kept.judge_calls == 1 + 2 + 3 + 4 + 5  # trace i meets all i earlier traces
    with pytest.raises(ValueError, match="when_full='stop' is invalid: `when_full` must be one of 'prune', 'assign'"):
        greedy_cluster(_states(2), judge, when_full="stop")


@pytest.mark.parametrize(
    ("name", "cls", "fields"),
    [
        ("largest_cluster", LargestClusterVote, {"k2": 20, "k3": 32, "min_finishers": 0}),
        ("size_weighted", SizeWeightedVote, {"per_cluster": 2, "clusters": None, "k3": 32, "min_finishers": 0}),
        ("floor", LargestClusterVote, {"k2": 20, "k3": 32, "min_finishers": 32}),
    ],
)
def test_aggregation_configs_instantiate(name: str, cls: type, fields: dict) -> None:
    path = Path(__file__).resolve().parents[1] / "conf" / "aggregation" / f"{name}.yaml"
    agg = instantiate(OmegaConf.load(path))  # no `scale` block: the paper's Table 6 values
    assert type(agg) is cls
    assert {key: getattr(agg, key) for key in fields} == fields
    scaled = instantiate(OmegaConf.merge({"scale": {"k2": 6, "k3": 8}}, {"agg": OmegaConf.load(path)}).agg)
    assert scaled.k3 == 8


def test_deepprune_policy_finishes_and_votes_with_its_aggregation() -> None:
    from test_online import C, small_traces

    from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
    from deepprune.online.judges import ConstantJudge
    from deepprune.online.policies import DeepPrunePolicy
    from deepprune.truncation import TokenPrefix

    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer(), shuffle=False)
    problem = next(p for p in gen.problems() if p.problem_id == "p2")  # answers 7, 8, 8, 9 in arrival order
    prefix = TokenPrefix(2, tokenizer=None)
    # One cluster (the judge merges everything); K2 = 1: the paper's rule lets trace 0 decide ("7")
    paper = DeepPrunePolicy(ConstantJudge(1.0), n=4, k2=1, prefix=prefix, checker=C)
    out = paper.run(problem, gen, seed=0)
    assert (out.finishers, out.answer, out.extra["finish_rule"]) == ([0], "7", "k2")
    # A floor of 3 finishers: traces 0, 1, 2 vote 7, 8, 8 -> "8"
    floor = DeepPrunePolicy(
        ConstantJudge(1.0), n=4, prefix=prefix, checker=C, aggregation=LargestClusterVote(k2=1, min_finishers=3)
    )
    out = floor.run(problem, gen, seed=0)
    assert (out.finishers, out.answer, out.extra["finish_rule"]) == ([0, 1, 2], "8", "k2+floor")
    # when_full=assign: K = 2 singletons at tau above 1, then traces 2 and 3 join a cluster instead of being pruned
    assign = DeepPrunePolicy(
        ConstantJudge(1.0), n=4, tau=1.01, max_clusters=2, prefix=prefix, checker=C, when_full="assign"
    )
    out = assign.run(problem, gen, seed=0)
    assert out.pruned == [] and sorted(i for c in out.clusters for i in c) == [0, 1, 2, 3]
