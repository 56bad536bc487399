"""The online runner and entry point: resume, metrics, config checks, and `python -m deepprune.online` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ExactChecker
from hydra import compose, initialize_config_dir

from deepprune.online.accounting import ProblemOutcome
from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.online.judges import ConstantJudge
from deepprune.online.policies import ConsensusPolicy, DeepPrunePolicy
from deepprune.online.runner import compute_metrics, problem_seed, run_online, summarize_sweep
from deepprune.runtime import CONF_DIR, read_jsonl_records
from deepprune.sources import Problem
from deepprune.traces import Trace, write_traces
from deepprune.truncation import TokenPrefix

REPO = Path(__file__).resolve().parents[1]


C = ExactChecker()


def small_traces() -> list[Trace]:
    """3 problems x 4 traces; whitespace-token lengths and answers chosen by hand."""
    spec = {
        "p1": [(6, "1"), (4, "1"), (5, "2"), (3, "1")],  # gold 1
        "p2": [(2, "7"), (8, "8"), (4, "8"), (6, "9")],  # gold 7: majority 8 is wrong
        "p3": [(5, "x"), (5, "x"), (5, "x"), (5, "x")],  # gold x
    }
    gold = {"p1": "1", "p2": "7", "p3": "x"}
    out = []
    for pid, items in spec.items():
        for i, (n, a) in enumerate(items):
            text = " ".join(f"{pid}w{i}_{j}" for j in range(n))
            out.append(
                Trace(
                    pid,
                    text,
                    model="m",
                    sample_id=i,
                    question=f"question {pid}",
                    gold=gold[pid],
                    answer=a,
                    num_tokens=n,
                )
            )
    return out


def runner_parts():
    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer(), shuffle=False)
    policy = DeepPrunePolicy(ConstantJudge(1.0), n=4, k2=2, prefix=TokenPrefix(2, tokenizer=None), checker=C)
    return gen, policy, ConsensusPolicy(n=4, checker=C)


def test_run_online_records_metrics_and_hand_computed_tokens(tmp_path):
    gen, policy, ref = runner_parts()
    metrics = run_online(gen.problems(), gen, policy, tmp_path, ref, seed=1, checker=C)
    recs = read_jsonl_records(tmp_path / "results.jsonl")
    assert [r["problem_id"] for r in recs] == ["p1", "p2", "p3"]
    # one cluster each; prefixes 2 tokens x 4; the first two traces finish
    assert [r["prefix_tokens"] for r in recs] == [8, 8, 8]
    assert [r["continuation_tokens"] for r in recs] == [(6 - 2) + (4 - 2), (2 - 2) + (8 - 2), 3 + 3]
    assert [r["reference"]["tokens"] for r in recs] == [18, 20, 20]
    # p2: the finishers answer 7 and 8, a tie that the first-arrived (7, correct) wins; cons@4 picks 8 (2 votes)
    assert [r["correct"] for r in recs] == [True, True, True]
    assert [r["reference"]["correct"] for r in recs] == [True, False, True]
    assert [r["pass_at_k"] for r in recs] == [True, True, True]
    assert recs[0]["seed"] == problem_seed(1, "p1")
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert metrics["policies"]["deepprune"]["tokens_total"] == 14 + 14 + 14
    assert metrics["policies"]["cons@4"]["tokens_total"] == 58
    assert metrics["token_reduction"] == pytest.approx(1 - 42 / 58)


def test_resume_skips_finished_problems(tmp_path):
    gen, policy, ref = runner_parts()
    problems = gen.problems()
    first = tmp_path / "first"
    run_online(problems[:2], gen, policy, first, ref, seed=1, checker=C)

    calls: list[str] = []

    class Counting(DeepPrunePolicy):
        def run(self, problem, generator, seed) -> ProblemOutcome:
            calls.append(problem.problem_id)
            return super().run(problem, generator, seed)

    counting = Counting(ConstantJudge(1.0), n=4, k2=2, prefix=TokenPrefix(2, tokenizer=None), checker=C)
    second = tmp_path / "second"
    metrics = run_online(problems, gen, counting, second, ref, seed=1, resume_dir=first, checker=C)
    assert calls == ["p3"]
    assert [r["problem_id"] for r in read_jsonl_records(second / "results.jsonl")] == ["p1", "p2", "p3"]
    assert metrics["policies"]["deepprune"]["problems"] == 3
    # the same output dir reused: nothing left to do
    calls.clear()
    run_online(problems, gen, counting, second, ref, seed=1, checker=C)
    assert calls == []
    # a torn last line is redone
    with (second / "results.jsonl").open("a") as fh:
        fh.write('{"problem_id": "p4", "trunc')
    run_online(problems, gen, counting, second, ref, seed=1, checker=C)
    assert calls == []
    other = ConsensusPolicy(n=4, checker=C)
    with pytest.raises(ValueError, match="holds results of policy"):
        run_online(problems, gen, other, second, None, seed=1, checker=C)


def test_compute_metrics_without_reference():
    recs = [
        {
            "policy": "x",
            "correct": True,
            "tokens": 10,
            "prefix_tokens": 4,
            "continuation_tokens": 6,
            "judge_calls": 3,
            "judge_input_tokens": 0,
            "pass_at_k": None,
            "num_clusters": None,
        }
    ]
    m = compute_metrics(recs)
    assert m["policies"]["x"]["accuracy"] == 1.0 and "token_reduction" not in m


def compose_online(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("online", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("policy", ["deepprune", "oracle", "cons", "deepconf_low", "deepconf_high"])
def test_every_policy_config_instantiates(policy):
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    cfg = compose_online(f"policy={policy}", "judge=constant")
    HydraConfig.instance().set_config(cfg)
    p = instantiate(cfg.policy)
    assert p.n == 18
    if policy == "deepprune":
        assert (p.max_clusters, p.k1, p.k2, p.k3, p.rule.k) == (6, 20, 6, 8, 100)  # CPU scale
        # a judge with no rule of its own reads the first 100 tokens the generating model generated
        assert p.prefix is None and p.rule.to_record() == {"kind": "tokens", "k": 100, "tokenizer": None}
        paper = instantiate(compose_online("judge=constant", "scale=null").policy)
        assert (paper.tau, paper.max_clusters, paper.k1, paper.k2, paper.k3, paper.rule.k) == (
            0.5,
            16,
            20,
            20,
            32,
            500,
        )
    if policy.startswith("deepconf"):
        assert p.percentile == (90 if policy.endswith("low") else 10)


@pytest.mark.parametrize("judge", ["constant", "oracle", "embedding"])
def test_judge_configs_instantiate(judge):
    from hydra.utils import instantiate

    j = instantiate(compose_online(f"judge={judge}").judge)
    assert callable(j.score) and callable(j.input_tokens)


def test_check_config_names_the_bad_key():
    from deepprune.online.settings import check_config, check_questions

    with pytest.raises(ValueError, match="`tau` must be in \\[0, 1\\]"):
        check_config(compose_online("tau=1.5"))
    with pytest.raises(ValueError, match="policy.max_clusters=0"):
        check_config(compose_online("scale.max_clusters=0"))
    check_config(compose_online("tau=1.0"))
    with pytest.raises(ValueError, match="without a question"):
        check_questions([Problem("a", " ")], "problems (x.jsonl)")


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "1", "DEEPPRUNE_LOG_DIR": str(tmp_path / "logs")}
    return subprocess.run(
        [sys.executable, "-m", "deepprune.online", *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli_overrides(tmp_path: Path) -> list[str]:
    path = tmp_path / "traces.jsonl"
    if not path.exists():
        write_traces(path, small_traces())
    return [
        "source=jsonl",
        f"source.path={path}",
        "source.models=null",
        "judge=constant",
        "n=4",
        "max_problems=null",
        "scale.prefix_k=2",
        "scale.k2=2",
        "generator.shuffle=false",
        "orders=1",  # one arrival order: the hand-computed totals below are for one run per problem
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]


@pytest.mark.slow
def test_online_entry_end_to_end_and_sweep(tmp_path):
    proc = run_cli(tmp_path, *cli_overrides(tmp_path), "tau=0.2,0.8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["policy"] == "deepprune" and metrics["reference"] == "cons@4"
        assert metrics["policies"]["cons@4"]["tokens_total"] == 58
        assert metrics["policies"]["deepprune"]["problems"] == 3
    # constant judge p=0.5: tau 0.2 -> one cluster (2 finish), tau 0.8 -> singletons (K3=8 >= n: all 4 finish)
    low = json.loads((sweep / "0" / "metrics.json").read_text())["policies"]["deepprune"]
    high = json.loads((sweep / "1" / "metrics.json").read_text())["policies"]["deepprune"]
    assert low["tokens_total"] == 42
    assert high["tokens_total"] == 58
    summary = (sweep / "sweep_summary.md").read_text()
    assert summary == summarize_sweep(sweep) + "\n"
    assert summary.count("| deepprune |") == 2 and "tau" in summary
    assert "deepprune" in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tau=1.5", "`tau` must be in [0, 1]"),
        ("scale.max_clusters=0", "policy.max_clusters=0"),
        ("generator=nope", "generator"),
    ],
)
def test_online_entry_rejects_bad_input(tmp_path, override, message):
    proc = run_cli(tmp_path, *cli_overrides(tmp_path), override)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.mark.slow
def test_online_entry_problem_file_without_questions(tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text('{"id": "a", "question": "", "answer": "1"}\n')
    proc = run_cli(tmp_path, *cli_overrides(tmp_path), "problems=jsonl", f"problems.path={problems}")
    assert proc.returncode != 0
    assert "question" in proc.stdout + proc.stderr


def test_sweep_summary_shows_a_swept_result_column_once(tmp_path):
    for job, policy in enumerate(["cons", "deepprune"]):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(f"- policy={policy}\n- tau=0.5\n")
        (tmp_path / str(job) / "metrics.json").write_text(
            json.dumps({"policies": {policy: {"problems": 2, "accuracy": 0.5}}})
        )
    header = summarize_sweep(tmp_path).splitlines()[0]
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:3] == ["job", "tau", "policy"]
    assert cells.count("policy") == 1


def test_drop_seen_problems_keeps_order_and_counts():
    from deepprune.online.runner import drop_seen_problems
    from deepprune.sources import Problem

    problems = [Problem(problem_id=i, question="q") for i in ("a", "b", "c", "d")]
    kept, dropped = drop_seen_problems(problems, {"b", "d", "z"})
    assert [p.problem_id for p in kept] == ["a", "c"] and dropped == 2


@pytest.mark.slow
def test_online_entry_skips_the_problems_the_judge_saw_for_every_policy(tmp_path):
    """A judge export listing p2 as seen: cons@N (which never loads the judge) still skips p2, like DeepPrune."""
    export = tmp_path / "export"
    export.mkdir()
    (export / "deepprune_judge.json").write_text(json.dumps({"kind": "classifier", "seen_problems": ["p2"]}))
    overrides = [o for o in cli_overrides(tmp_path) if o != "judge=constant"]
    proc = run_cli(tmp_path, *overrides, "judge=exported", f"judge.export_dir={export}", "policy=cons")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in (tmp_path / "sweep" / "0" / "results.jsonl").read_text().splitlines()]
    assert [r["problem_id"] for r in results] == ["p1", "p3"]
    assert "skipping 1 problem(s)" in proc.stdout + proc.stderr
