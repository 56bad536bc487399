"""The simulator (generator=simulated, judge=simulated) and the answer-list source: literal token counts,
the oracle against cons@N on real answer distributions, the judge's AUROC, and seeded reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepprune.online.generators.simulated import SimulatedGenerator, answer_lists_from_traces, lognormal_params
from deepprune.online.judges import OracleJudge
from deepprune.online.policies import ConsensusPolicy, DeepConfPolicy, DeepPrunePolicy
from deepprune.online.runner import run_online
from deepprune.online.simulated_judge import SimulatedJudge, hashed_normals, separation_for_auroc
from deepprune.reporting import roc_points
from deepprune.runtime import read_jsonl_records
from deepprune.sources import Problem
from deepprune.sources.answer_lists import AnswerList, AnswerListFormatError, load_answer_lists
from deepprune.stats import clustered_bootstrap_ci, paired_diff_ci
from deepprune.traces import Trace
from deepprune.truncation import TokenPrefix, WordPrefix

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
THOUGHT_BRANCHES = SHARED_DIR / "data" / "raw" / "thought-branches" / "math_cots_summary_qwen14.csv"
needs_thought_branches = pytest.mark.skipif(not THOUGHT_BRANCHES.is_file(), reason="../shared thought-branches absent")


def token_prefix(k: int) -> TokenPrefix:
    """A prefix of k GENERATED tokens (the rule a simulated trace can follow: it has no text)."""
    return TokenPrefix(k, tokenizer=None)


def word_prefix(k: int) -> WordPrefix:
    return WordPrefix(k)


def hand_case() -> list[AnswerList]:
    # p1: three traces reach 7 (100 tokens each), two reach 3 (20 and 60 tokens); gold 7
    return [AnswerList("p1", "q1", "7", ["7", "3", "7", "3", "7"], lengths=[100, 20, 100, 60, 100])]


# -- answer-list source ---------------------------------------------------------------------------------------


CSV = (
    "problem,gt_answer,answers,M_tokens,med_tokens,std_tokens,pn,type\n"
    "\"Find x.\nThen y.\",5,\"['5', '5', '6']\",120.5,110,30.25,17,Algebra\n"
    "Second,,\"['a']\",,,,18,Geometry\n"
)


def test_answer_list_csv_round_trip(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(CSV)
    first, second = load_answer_lists(path, id_prefix="x/")
    assert first.problem_id == "x/17" and first.question == "Find x.\nThen y." and first.gold == "5"
    assert first.answers == ["5", "5", "6"]
    assert (first.mean_tokens, first.median_tokens, first.std_tokens) == (120.5, 110.0, 30.25)
    assert first.meta == {"type": "Algebra"}
    assert second.gold is None and second.answers == ["a"] and second.mean_tokens is None
    assert first.problem() == Problem("x/17", "Find x.\nThen y.", "5", None, {"type": "Algebra"})
    assert [a.problem_id for a in load_answer_lists(path, limit=1)] == ["17"]


def test_answer_list_csv_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(CSV.replace("\"['a']\"", "\"['a'\""))
    # the bad row starts on line 4: the first record spans lines 2-3
    with pytest.raises(AnswerListFormatError, match=r"a\.csv:4: column 'answers': not a Python or JSON list"):
        load_answer_lists(path)
    path.write_text(CSV.replace(",18,", ",17,"))
    with pytest.raises(AnswerListFormatError, match=r"a\.csv:4: 'pn' '17' repeats the row at line 2"):
        load_answer_lists(path)
    path.write_text(CSV.replace("answers", "answer_list", 1))
    with pytest.raises(AnswerListFormatError, match=r"a\.csv:1: missing column\(s\) \['answers'\]"):
        load_answer_lists(path)
    path.write_text(CSV.replace("120.5", "many"))
    with pytest.raises(AnswerListFormatError, match=r"a\.csv:2: column 'M_tokens': not a number"):
        load_answer_lists(path)
    with pytest.raises(FileNotFoundError, match="answer_lists.path"):
        load_answer_lists(tmp_path / "none.csv")


@needs_thought_branches
def test_thought_branches_answer_lists():
    rows = load_answer_lists(THOUGHT_BRANCHES)
    assert len(rows) == 1010 and sum(len(r.answers) for r in rows) == 9932  # as ../shared's SOURCES.md says
    assert sum(len(set(r.answers)) > 1 for r in rows) == 287
    assert all(r.mean_tokens and r.std_tokens is not None for r in rows)
    shuffled = load_answer_lists(THOUGHT_BRANCHES, shuffle_seed=0)
    assert sorted(r.problem_id for r in shuffled) == sorted(r.problem_id for r in rows)
    assert [r.problem_id for r in shuffled[:5]] != [r.problem_id for r in rows[:5]]
    # the file is sorted by accuracy; a shuffled sample of 100 is not the hardest 100
    assert np.mean([r.meta["accuracy"] == "0.0" for r in shuffled[:100]]) < 0.2
    assert all(r.meta["accuracy"] == "0.0" for r in rows[:50])


# -- generator: token counting --------------------------------------------------------------------------------


def test_hand_case_token_reduction_with_the_oracle(tmp_path):
    gen = SimulatedGenerator(hand_case(), replace=False, length_model="empirical")
    policy = DeepPrunePolicy(OracleJudge(), n=5, k2=2, prefix=token_prefix(30))
    metrics = run_online(gen.problems(), gen, policy, tmp_path, ConsensusPolicy(n=5), seed=3)
    (rec,) = read_jsonl_records(tmp_path / "results.jsonl")
    # prefixes: four traces stop at 30 tokens, the 20-token one finishes inside its prefix
    assert rec["prefix_tokens"] == 4 * 30 + 20
    # clusters {7, 7, 7} and {3, 3}; two of the 7s finish: 2 x (100 - 30)
    assert sorted(rec["cluster_sizes"]) == [2, 3] and rec["continuation_tokens"] == 2 * 70
    assert rec["reference"]["tokens"] == 3 * 100 + 20 + 60
    assert metrics["token_reduction"] == pytest.approx(1 - 280 / 380)
    assert rec["correct"] and rec["reference"]["correct"] and rec["answer"] == "7"


def test_with_replacement_counts_match_the_drawn_traces(tmp_path):
    lists = [AnswerList("p1", "q", "7", ["7", "7", "7", "3", "3"], mean_tokens=100, std_tokens=0)]
    gen = SimulatedGenerator(lists, length_model="constant")
    states = gen.start(lists[0].problem(), 50, seed=11)
    sevens = sum(gen.peek_answer(s) == "7" for s in states)
    assert 20 < sevens < 50  # with replacement: a sample of the 60/40 distribution
    policy = DeepPrunePolicy(OracleJudge(), n=50, k2=20, prefix=token_prefix(30))
    rec = policy.run(lists[0].problem(), gen, 11)
    assert rec.prefix_tokens == 50 * 30 and rec.continuation_tokens == min(20, sevens) * 70
    assert ConsensusPolicy(n=50).run(lists[0].problem(), gen, 11).tokens == 50 * 100


def test_text_rules_and_deepconf_fail_clearly():
    gen = SimulatedGenerator(hand_case(), length_model="empirical")
    problem = gen.problems()[0]
    states = gen.start(problem, 4, seed=0)
    with pytest.raises(ValueError, match="no text: a prefix rule of reasoning words"):
        gen.advance(states, until=word_prefix(25).reached)
    with pytest.raises(ValueError, match="needs token confidences"):
        DeepConfPolicy(n=8, warmup=2).run(problem, gen, 0)
    # a plain predicate (no fast path) is checked token by token
    gen.advance(states, until=lambda s: s.num_tokens >= 7)
    assert [s.num_tokens for s in states] == [7, 7, 7, 7]


def test_generator_rejects_bad_settings():
    with pytest.raises(ValueError, match="needs per-answer lengths"):
        SimulatedGenerator([AnswerList("p", "q", "1", ["1"])], length_model="empirical")
    with pytest.raises(ValueError, match="needs generator.p_correct"):
        SimulatedGenerator(None, answers="parametric")
    with pytest.raises(ValueError, match="replace=false"):
        gen = SimulatedGenerator(hand_case(), replace=False)
        gen.start(gen.problems()[0], 6, seed=0)


def test_lognormal_lengths_match_the_source_statistics():
    assert lognormal_params(100.0, 0.0) == pytest.approx((np.log(100.0), 0.0))
    lists = [AnswerList("p", "q", "1", ["1"], mean_tokens=4600.0, std_tokens=1300.0)]
    gen = SimulatedGenerator(lists)
    states = gen.start(lists[0].problem(), 20_000, seed=0)
    lengths = np.array([gen.full_tokens(s) for s in states])
    assert lengths.mean() == pytest.approx(4600, rel=0.01) and lengths.std() == pytest.approx(1300, rel=0.03)
    assert np.median(lengths) < lengths.mean()  # right-skewed, as reasoning lengths are


def test_parametric_answers():
    gen = SimulatedGenerator(None, answers="parametric", p_correct=0.7, wrong_answers=3, num_problems=2)
    problem = gen.problems()[1]
    assert problem.problem_id == "sim/0001" and problem.gold == "0"
    states = gen.start(problem, 20_000, seed=0)
    answers = [gen.peek_answer(s) for s in states]
    assert np.mean([a == "0" for a in answers]) == pytest.approx(0.7, abs=0.01)
    assert set(answers) == {"0", "1000000001", "1000000002", "1000000003"}
    assert len({gen.answer_class(s) for s in states}) == 4
    # p_correct=null: each source problem's own accuracy (2 of 3 answers match gold 5)
    src = SimulatedGenerator([AnswerList("p", "q", "5", ["5", "6", "5"])], answers="parametric")
    drawn = src.start(Problem("p", "q", "5"), 30_000, seed=1)
    assert np.mean([src.peek_answer(s) == "5" for s in drawn]) == pytest.approx(2 / 3, abs=0.01)


def test_answer_lists_from_real_traces_keep_each_answers_length():
    traces = [
        Trace("p", "so it is 4", model="m", sample_id=i, gold="4", answer=a, num_tokens=n)
        for i, (a, n) in enumerate([("4", 10), ("5", 300), ("4", 12)])
    ]
    (lst,) = answer_lists_from_traces(traces)
    assert (
        lst.answers == ["4", "5", "4"] and lst.lengths == [10, 300, 12] and lst.mean_tokens == pytest.approx(322 / 3)
    )
    gen = SimulatedGenerator([lst], length_model="empirical")
    states = gen.start(lst.problem(), 300, seed=0)
    assert {(gen.peek_answer(s), gen.full_tokens(s)) for s in states} == {("4", 10), ("5", 300), ("4", 12)}


def test_seeded_reproducibility(tmp_path):
    lists = [AnswerList(f"p{i}", "q", "1", ["1", "1", "2", "3"], mean_tokens=900, std_tokens=300) for i in range(4)]

    def run(out, seed):
        gen = SimulatedGenerator(lists)
        judge = SimulatedJudge(auroc=0.8, trace_correlation=0.3)
        policy = DeepPrunePolicy(judge, n=64, max_clusters=4, k2=8, prefix=token_prefix(100))
        run_online(gen.problems(), gen, policy, out, ConsensusPolicy(n=64), seed=seed)
        return read_jsonl_records(out / "results.jsonl")

    first, again, other = run(tmp_path / "a", 5), run(tmp_path / "b", 5), run(tmp_path / "c", 6)
    assert first == again
    assert [r["tokens"] for r in first] != [r["tokens"] for r in other]


# -- judge ----------------------------------------------------------------------------------------------------


def random_pairs(gen: SimulatedGenerator, n_traces: int, n_pairs: int, seed: int):
    problem = gen.problems()[0]
    states = gen.start(problem, n_traces, seed=seed)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n_traces, 3 * n_pairs)
    j = rng.integers(0, n_traces, 3 * n_pairs)
    keep = np.flatnonzero(i != j)[:n_pairs]
    return [(states[a], states[b]) for a, b in zip(i[keep], j[keep])]


@pytest.mark.parametrize(("auroc", "rho"), [(0.6, 0.0), (0.7, 0.0), (0.87, 0.0), (0.95, 0.0), (0.87, 0.5)])
def test_simulated_judge_hits_its_auroc_on_10000_pairs(auroc, rho):
    gen = SimulatedGenerator([AnswerList("p", "q", "1", ["1", "2"])])  # half the pairs share an answer
    pairs = random_pairs(gen, 4000, 10_000, seed=2)
    judge = SimulatedJudge(auroc=auroc, trace_correlation=rho, seed=9)
    judge.attach(gen)
    labels = judge.labels(pairs)
    assert 0.4 < labels.mean() < 0.6 and len(pairs) == 10_000
    _, _, measured = roc_points(judge.score(pairs).tolist(), labels.astype(int).tolist())
    assert measured == pytest.approx(auroc, abs=0.01)


def test_simulated_judge_model_properties():
    gen = SimulatedGenerator([AnswerList("p", "q", "1", ["1", "2", None])])
    pairs = random_pairs(gen, 300, 2000, seed=0)
    judge = SimulatedJudge(auroc=0.8, seed=1)
    judge.attach(gen)
    scores = judge.score(pairs)
    # the same pair scores the same in either order, on every call and in a fresh judge
    assert np.array_equal(scores, judge.score([(b, a) for a, b in pairs]))
    fresh = SimulatedJudge(auroc=0.8, seed=1)
    fresh.attach(gen)
    assert np.array_equal(scores, fresh.score(pairs))
    # a missing answer is never equivalent (as the oracle); labels agree with the oracle's
    oracle = OracleJudge()
    oracle.attach(gen)
    assert np.array_equal(judge.labels(pairs), oracle.score(pairs))
    # the offset shifts every logit by exactly its value
    shifted = SimulatedJudge(auroc=0.8, seed=1, offset=1.5)
    shifted.attach(gen)
    logit = np.log(scores / (1 - scores))
    assert np.allclose(np.log(shifted.score(pairs) / (1 - shifted.score(pairs))) - logit, 1.5)
    # the default scale is the calibrated log-likelihood ratio: mean logit +-d^2/2 by label
    d = separation_for_auroc(0.8)
    y = judge.labels(pairs).astype(bool)
    assert logit[y].mean() == pytest.approx(d * d / 2, abs=0.1) and logit[~y].mean() == pytest.approx(
        -d * d / 2, abs=0.1
    )
    perfect = SimulatedJudge(auroc=1.0)
    perfect.attach(gen)
    assert np.array_equal(perfect.score(pairs), judge.labels(pairs))
    assert judge.input_tokens(pairs[:2]) == 0  # nothing generated yet
    with pytest.raises(ValueError, match=r"judge.auroc must be in \[0.5, 1\]"):
        SimulatedJudge(auroc=0.4)
    with pytest.raises(TypeError, match="peek_answer"):
        SimulatedJudge().attach(object())


def test_hashed_normals_are_standard_normal_and_pure():
    z = hashed_normals(7, np.arange(200_000, dtype=np.uint64))
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, abs=0.01)
    assert np.array_equal(z[:10], hashed_normals(7, np.arange(10, dtype=np.uint64)))
    assert not np.array_equal(z[:10], hashed_normals(8, np.arange(10, dtype=np.uint64)))


# -- the paper-scale claim on a real answer distribution --------------------------------------------------------


@needs_thought_branches
def test_oracle_equals_cons_on_thought_branches(tmp_path):
    lists = load_answer_lists(THOUGHT_BRANCHES, limit=30, shuffle_seed=0)
    gen = SimulatedGenerator(lists)
    # judge=simulated at AUROC 1 is the oracle (same clusters), without an answer comparison per pair
    for problem in gen.problems()[:2]:
        slow = DeepPrunePolicy(OracleJudge(), n=128, prefix=token_prefix(500)).run(problem, gen, 4)
        fast = DeepPrunePolicy(SimulatedJudge(auroc=1.0), n=128, prefix=token_prefix(500)).run(problem, gen, 4)
        assert (slow.clusters, slow.finishers, slow.tokens) == (fast.clusters, fast.finishers, fast.tokens)
    correct: dict[str, list[list[float]]] = {"oracle": [], "cons": []}
    reduction = []
    for seed in (0, 1):
        policy = DeepPrunePolicy(SimulatedJudge(auroc=1.0), n=256, prefix=token_prefix(500), name="oracle")
        out = tmp_path / str(seed)
        metrics = run_online(gen.problems(), gen, policy, out, ConsensusPolicy(n=256), seed=seed)
        recs = read_jsonl_records(out / "results.jsonl")
        # at most 9 answer classes < K = 16: every trace is clustered, the largest cluster is cons@N's winner
        assert [r["answer"] for r in recs] == [r["reference"]["answer"] for r in recs]
        correct["oracle"].append([float(r["correct"]) for r in recs])
        correct["cons"].append([float(r["reference"]["correct"]) for r in recs])
        reduction.append(metrics["token_reduction"])
    oracle, cons = np.array(correct["oracle"]).T, np.array(correct["cons"]).T  # problems x orders
    assert clustered_bootstrap_ci(oracle).contains(float(cons.mean()))
    assert paired_diff_ci(oracle, cons).contains(0.0)
    # 256 prefixes of 500 tokens plus 20 finishers, against 256 complete traces of ~4,600 tokens
    assert 0.75 < min(reduction) and max(reduction) < 0.95


def test_configs_compose_and_instantiate():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    repo = Path(__file__).resolve().parents[1]
    overrides = ["generator=simulated", "judge=simulated", "n=512", "scale=null", f"paths.root_dir={repo}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("online", overrides=overrides)
    judge = instantiate(cfg.judge)
    assert isinstance(judge, SimulatedJudge) and judge.auroc == 0.87 and judge.offset == 0.0
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        exp = compose("online", overrides=["experiment=sim_scale"], return_hydra_config=True)
    assert exp.n == 512 and exp.scale is None and exp.max_problems == 100
    assert exp.generator._target_.endswith("SimulatedGenerator") and exp.judge._target_.endswith("SimulatedJudge")
    assert exp.hydra.sweeper.params["judge.auroc"] == "0.6,0.7,0.8,0.87,0.95,1.0"
    if not THOUGHT_BRANCHES.is_file():
        pytest.skip("../shared thought-branches absent")
    assert Path(cfg.generator.answer_lists.path).resolve() == THOUGHT_BRANCHES.resolve()
    gen = instantiate(cfg.generator)
    assert isinstance(gen, SimulatedGenerator) and len(gen.problems()) == 1010
    assert gen.problems()[0].problem_id.startswith("thought-branches/")


def test_counts_match_replay_on_the_same_traces():
    from deepprune.online.generators.replay import ReplayGenerator
    from deepprune.online.judges import ConstantJudge

    lengths = {"p1": [700, 120, 505, 499], "p2": [10, 2000, 501, 800]}
    traces = [
        Trace(pid, "x " * n, model="m", sample_id=i, gold="1", answer=str(i % 2), num_tokens=n)
        for pid, ns in lengths.items()
        for i, n in enumerate(ns)
    ]
    replay = ReplayGenerator(traces)
    sim = SimulatedGenerator(answer_lists_from_traces(traces), replace=False, length_model="empirical")
    for problem in replay.problems():
        outcomes = []
        for gen in (replay, sim):
            policy = DeepPrunePolicy(ConstantJudge(1.0), n=4, k2=4, prefix=token_prefix(500))
            outcomes.append((policy.run(problem, gen, 7), ConsensusPolicy(n=4).run(problem, gen, 7)))
        (dp_r, cons_r), (dp_s, cons_s) = outcomes
        ns = lengths[problem.problem_id]
        assert dp_r.prefix_tokens == dp_s.prefix_tokens == sum(min(n, 500) for n in ns)
        assert dp_r.continuation_tokens == dp_s.continuation_tokens == sum(max(n - 500, 0) for n in ns)
        assert cons_r.tokens == cons_s.tokens == sum(ns)
