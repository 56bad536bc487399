"""Policies on hand-made replay sets: K2 and K3 rules, token totals, DeepConf, the oracle bound."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ExactChecker

from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.online.judges import ConstantJudge, OracleJudge
from deepprune.online.policies import (
    ConsensusPolicy,
    DeepConfPolicy,
    DeepPrunePolicy,
    GroupConfidenceStop,
    lowest_group_confidence,
)
from deepprune.sources import Problem
from deepprune.traces import Trace
from deepprune.truncation import TokenPrefix

C = ExactChecker()
P = Problem("p", "q", gold="A")
# (tokens, answer): whitespace tokens, so lengths are exact
SPEC = [(10, "A"), (8, "A"), (6, "B"), (4, "A"), (12, "B"), (2, "C")]


def traces(spec=SPEC, pid="p", confs=None) -> list[Trace]:
    out = []
    for i, (n, a) in enumerate(spec):
        out.append(
            Trace(
                pid,
                " ".join(f"w{i}_{j}" for j in range(n)),
                sample_id=i,
                answer=a,
                gold="A",
                token_confidences=None if confs is None else confs[i],
            )
        )
    return out


def replay(spec=SPEC, **kw) -> ReplayGenerator:
    return ReplayGenerator(traces(spec, **kw), tokenizer=WhitespaceTokenizer(), shuffle=False)


def deepprune(judge, **kw) -> DeepPrunePolicy:
    kw.setdefault("n", 6)
    kw.setdefault("prefix", TokenPrefix(3, tokenizer=None))
    return DeepPrunePolicy(judge, checker=C, **kw)


def test_one_cluster_lets_k2_first_arrived_traces_finish_with_exact_token_totals():
    out = deepprune(ConstantJudge(1.0), k2=2).run(P, replay(), seed=0)
    assert out.clusters == [[0, 1, 2, 3, 4, 5]]
    assert out.finishers == [0, 1]
    assert out.prefix_tokens == 3 + 3 + 3 + 3 + 3 + 2  # 17: every prefix (trace 5 ends at 2 tokens)
    assert out.continuation_tokens == (10 - 3) + (8 - 3)  # 12
    assert out.tokens == 29
    assert out.judge_calls == 1 + 2 + 3 + 4 + 5
    assert out.answer == "A" and out.extra["finish_rule"] == "k2"
    cons = ConsensusPolicy(n=6, checker=C).run(P, replay(), seed=0)
    assert (cons.tokens, cons.answer, cons.policy) == (42, "A", "cons@6")


def test_largest_cluster_is_capped_by_k2_and_smaller_clusters_are_released():
    out = deepprune(OracleJudge(checker=C), k2=2).run(P, replay(), seed=0)
    assert out.clusters == [[0, 1, 3], [2, 4], [5]]
    assert out.finishers == [0, 1]
    assert out.cluster_answers == ["A", "B", "C"]
    assert out.continuation_tokens == 12
    out = deepprune(OracleJudge(checker=C), k2=20).run(P, replay(), seed=0)
    assert out.finishers == [0, 1, 3]  # min(|c|, K2) = 3
    assert out.continuation_tokens == 7 + 5 + 1


def test_k_limit_prunes_the_rest():
    out = deepprune(OracleJudge(checker=C), max_clusters=2).run(P, replay(), seed=0)
    assert out.clusters == [[0, 1], [2]]
    assert out.pruned == [3, 4, 5]
    assert out.finishers == [0, 1] and out.answer == "A"


def test_all_singletons_sample_k3_traces_from_all_n():
    g = replay()
    out = deepprune(ConstantJudge(0.0), k3=3).run(P, g, seed=4)
    assert len(out.clusters) == 6 and out.extra["finish_rule"] == "k3"
    assert len(out.finishers) == 3 and out.finishers == sorted(set(out.finishers))
    lengths = [n for n, _ in SPEC]
    assert out.continuation_tokens == sum(lengths[i] - min(3, lengths[i]) for i in out.finishers)
    again = deepprune(ConstantJudge(0.0), k3=3).run(P, replay(), seed=4)
    assert again.finishers == out.finishers  # seeded
    everyone = deepprune(ConstantJudge(0.0), k3=32).run(P, replay(), seed=4)
    assert everyone.finishers == [0, 1, 2, 3, 4, 5]
    assert everyone.tokens == 42  # K3 >= N: same tokens as cons@N


def test_k_equal_one_is_a_singleton_cluster_so_k3_applies():
    out = deepprune(ConstantJudge(1.0), max_clusters=1, k3=2).run(P, replay(), seed=0)
    assert out.clusters == [[0]] and out.pruned == [1, 2, 3, 4, 5]
    assert out.extra["finish_rule"] == "k3" and len(out.finishers) == 2


def test_oracle_matches_cons_whenever_nothing_is_pruned():
    """The oracle's clusters are the answer classes; the largest one is cons@N's plurality class (same tie rule),
    and its K2 finishers all carry that answer. So oracle and cons@N can only differ when the K limit prunes
    traces (or every class is a singleton): the loss is bounded by what those cases can cost."""
    rng = np.random.default_rng(0)
    differ_when_complete = 0
    for trial in range(60):
        n = int(rng.integers(2, 12))
        spec = [(int(rng.integers(1, 9)), str(rng.choice(["A", "B", "C", "D", None]))) for _ in range(n)]
        spec = [(k, None if a == "None" else a) for k, a in spec]
        policy = deepprune(OracleJudge(checker=C), n=n, k2=3, max_clusters=16)
        out = policy.run(P, replay(spec), seed=trial)
        cons = ConsensusPolicy(n=n, checker=C).run(P, replay(spec), seed=trial)
        if not out.pruned and out.extra["finish_rule"] == "k2":
            differ_when_complete += out.answer != cons.answer
        assert out.tokens <= cons.tokens
    assert differ_when_complete == 0


def test_lowest_group_confidence_and_stop_rule():
    assert lowest_group_confidence([], 3) == 0.0
    assert lowest_group_confidence([1.0, 2.0], 3) == 1.5  # shorter than a window: the mean
    assert lowest_group_confidence([4.0, 4.0, 1.0, 1.0, 4.0], 2) == 1.0
    stop = GroupConfidenceStop(3.0, window=2)
    assert stop.first_index("", [1, 2, 3, 4, 5], [4.0, 4.0, 1.0, 1.0, 4.0]) == 3  # mean(4, 1) = 2.5 < 3
    assert stop.first_index("", [1, 2, 3], [6.0, 6.0, 6.0]) == 3  # never: the end


def test_deepconf_warmup_threshold_early_stop_and_weighted_vote():
    spec = [(4, "A"), (4, "B"), (5, "B"), (3, "C")]
    confs = [[5.0] * 4, [1.0] * 4, [4.0, 4.0, 1.0, 1.0, 4.0], [6.0] * 3]
    g = replay(spec, confs=confs)
    out = DeepConfPolicy(n=4, warmup=2, percentile=50, window=2, checker=C).run(P, g, seed=0)
    assert out.extra["threshold"] == 3.0  # 50th percentile of (5, 1)
    assert out.extra["stopped"] == [2]  # stopped after its 3rd token
    assert out.prefix_tokens == 8 and out.continuation_tokens == 3 + 3
    # votes: trace 0 (A, 5.0) and trace 3 (C, 6.0); trace 1 is below the bar, trace 2 was stopped
    assert out.answer == "C" and out.voters == 2
    assert out.policy == "deepconf_low"  # percentile >= 50 is the low (aggressive) variant


def test_deepconf_needs_token_confidences():
    with pytest.raises(ValueError, match="needs token confidences"):
        DeepConfPolicy(n=6, warmup=2, checker=C).run(P, replay(), seed=0)


@pytest.mark.parametrize("kwargs", [{"k2": 0}, {"k3": 0}, {"max_clusters": 0}, {"n": 0}, {"tau": -1}])
def test_bad_deepprune_arguments(kwargs):
    with pytest.raises(ValueError, match="policy."):
        deepprune(ConstantJudge(0.5), **kwargs)


def test_exported_judge_scores_both_orders_and_counts_tokens(tmp_path):
    from deepprune.online.generators.base import TraceState
    from deepprune.online.judges import ScorerJudge, exported_judge

    class OrderBiased:
        def score(self, pairs):
            return np.array([0.9 if a < b else 0.5 for a, b in pairs])

    judge = ScorerJudge(OrderBiased())
    a, b = TraceState(0, 0, text="a", num_tokens=3), TraceState(1, 1, text="b", num_tokens=4)
    assert judge.score([(a, b), (b, a)]).tolist() == pytest.approx([0.7, 0.7])
    assert judge.input_tokens([(a, b)]) == 2 * (3 + 4)
    one_way = ScorerJudge(OrderBiased, symmetric=False)  # a factory: built on first use
    assert one_way.score([(a, b), (b, a)]).tolist() == [0.9, 0.5]
    assert one_way.input_tokens([(a, b)]) == 7
    with pytest.raises(FileNotFoundError, match="export_dir"):
        exported_judge(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a deepprune judge export"):
        exported_judge(tmp_path)  # a folder without deepprune_judge.json, before any model loads


def test_exported_judge_reads_an_order_invariant_judge_once(tmp_path):
    """A siamese export scores each pair once, embeds all prefixes in prepare(), and counts one reading."""
    from deepprune.online.generators.base import TraceState
    from deepprune.online.judges import ScorerJudge

    class Invariant:
        order_invariant = True

        def __init__(self):
            self.scored, self.embedded = [], []

        def embed(self, texts):
            self.embedded.append(list(texts))

        def score(self, pairs):
            self.scored.append(list(pairs))
            return np.full(len(pairs), 0.25)

    judge = ScorerJudge(Invariant())
    a, b = TraceState(0, 0, text="a", num_tokens=3), TraceState(1, 1, text="b", num_tokens=4)
    judge.prepare([a, b])
    assert judge.scorer.embedded == [["a", "b"]]
    assert judge.score([(a, b)]).tolist() == [0.25]
    assert judge.scorer.scored == [[("a", "b")]]
    assert judge.input_tokens([(a, b)]) == 3 + 4


def test_oracle_judge_is_replay_only():
    class Live:
        pass

    with pytest.raises(TypeError, match="only replay"):
        OracleJudge(checker=C).attach(Live())


def test_trace_progress_counts_finished_and_pruned_traces_and_delegates(monkeypatch, capsys):
    """The progress wrapper changes nothing about the run and counts every trace once."""
    from deepprune.online.generators.base import TraceProgress

    monkeypatch.setenv("DEEPPRUNE_PROGRESS", "1")
    monkeypatch.delenv("CI", raising=False)
    plain = deepprune(ConstantJudge(1.0), k2=2).run(P, replay(), seed=0)
    tracked = TraceProgress(replay(), desc="traces")
    out = deepprune(ConstantJudge(1.0), k2=2).run(P, tracked, seed=0)
    assert (out.answer, out.tokens) == (plain.answer, plain.tokens)
    # traces 0 and 1 finish (10 + 8 tokens), trace 5 ends inside its prefix (2), three stop at 3-token prefixes
    assert tracked.counts() == {"finished": 3, "pruned": 3, "tokens": 10 + 8 + 2 + 3 * 3} and out.tokens == 29
    assert tracked.peek_answer(tracked._states[2]) == "B"  # replay-only methods pass through
    tracked.close()
    assert "traces p" in capsys.readouterr().err
