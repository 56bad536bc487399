"""Replay over R seeded arrival orders: exact reproduction, order 0 as a single-order run, resume, intervals."""

from __future__ import annotations

import json

import pytest
from test_online import C, small_traces

from deepprune.judge.calibration import choose_tau, tau_from_record
from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.online.judges import ConstantJudge
from deepprune.online.policies import ConsensusPolicy, DeepPrunePolicy
from deepprune.online.runner import order_seed, problem_seed, run_online
from deepprune.runtime import read_jsonl_records
from deepprune.truncation import TokenPrefix


def parts():
    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer(), shuffle=True)
    # K = 2 clusters of singletons at tau above 1: K3 = 2 traces sampled per order, so orders differ
    policy = DeepPrunePolicy(
        ConstantJudge(1.0), n=4, tau=1.01, max_clusters=2, k2=2, k3=2, prefix=TokenPrefix(2, tokenizer=None), checker=C
    )
    return gen, policy, ConsensusPolicy(n=4, checker=C)


def _runs(path) -> list[dict]:
    return [{k: v for k, v in r.items()} for r in read_jsonl_records(path / "results.jsonl")]


def test_orders_with_the_same_seed_reproduce_exactly(tmp_path):
    gen, policy, ref = parts()
    first = run_online(gen.problems(), gen, policy, tmp_path / "a", ref, seed=3, checker=C, orders=4)
    gen, policy, ref = parts()
    second = run_online(gen.problems(), gen, policy, tmp_path / "b", ref, seed=3, checker=C, orders=4)
    assert _runs(tmp_path / "a") == _runs(tmp_path / "b")
    assert first == second
    runs = _runs(tmp_path / "a")
    assert [(r["problem_id"], r["order"]) for r in runs] == [(p, o) for p in ("p1", "p2", "p3") for o in range(4)]
    # order 0 keeps the single-order seed (committed one-order results stay valid); the others differ
    assert runs[0]["seed"] == problem_seed(3, "p1") == order_seed(3, "p1", 0)
    assert len({r["seed"] for r in runs}) == 12
    # the K3 sample differs between orders for at least one problem
    assert len({tuple(r["finishers"]) for r in runs if r["problem_id"] == "p1"}) > 1
    m = first["policies"]["deepprune"]
    assert (m["problems"], m["orders"]) == (3, 4)
    assert first["intervals"]["orders"] == 4 and first["intervals"]["problems"] == 3
    assert m["accuracy_low"] <= m["accuracy"] <= m["accuracy_high"]
    assert m["token_reduction_low"] <= m["token_reduction"] <= m["token_reduction_high"]
    # the paired difference is the mean over runs of correct - reference correct
    diff = sum(float(r["correct"]) - float(r["reference"]["correct"]) for r in runs) / len(runs)
    assert m["accuracy_diff"] == pytest.approx(diff)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == json.loads(json.dumps(first))


def test_one_order_equals_order_zero_and_more_orders_resume(tmp_path):
    gen, policy, ref = parts()
    one = run_online(gen.problems(), gen, policy, tmp_path / "one", ref, seed=3, checker=C)
    gen, policy, ref = parts()
    run_online(gen.problems(), gen, policy, tmp_path / "two", ref, seed=3, checker=C, orders=2)
    zero = [r for r in _runs(tmp_path / "two") if r["order"] == 0]
    assert zero == _runs(tmp_path / "one")
    assert one["policies"]["deepprune"]["orders"] == 1
    # extending to 3 orders runs only order 2 of each problem
    calls: list[int] = []

    class Counting(DeepPrunePolicy):
        def run(self, problem, generator, seed):
            calls.append(seed)
            return super().run(problem, generator, seed)

    counting = Counting(
        ConstantJudge(1.0), n=4, tau=1.01, max_clusters=2, k2=2, k3=2, prefix=TokenPrefix(2, tokenizer=None), checker=C
    )
    run_online(gen.problems(), gen, counting, tmp_path / "two", ref, seed=3, checker=C, orders=3)
    assert calls == [order_seed(3, p, 2) for p in ("p1", "p2", "p3")]
    with pytest.raises(ValueError, match="orders must be >= 1"):
        run_online(gen.problems(), gen, policy, tmp_path / "bad", ref, orders=0)


def test_tau_auto_reads_the_export_record_or_refuses():
    pairs = {"scores": [0.1, 0.2, 0.3, 0.6, 0.8], "labels": [0, 1, 0, 1, 1]}
    recorded = choose_tau(pairs["scores"], pairs["labels"], "same_split", 0.2)
    record = {"tau_auto": recorded.to_record(), "validation_pairs": pairs}
    assert tau_from_record(record) == recorded
    # another target is chosen on the recorded validation pairs: at most 0 of the 2 different pairs merged
    other = tau_from_record(record, "false_merge", 0.0)
    assert other.tau == 0.6 and other.false_merge_rate == 0.0 and other.same_merge_rate == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="needs a judge with a validation record"):
        tau_from_record({})
    with pytest.raises(ValueError, match="needs a judge with a validation record"):
        tau_from_record(None)


def test_online_entry_refuses_tau_auto_for_a_judge_without_validation_record(tmp_path):
    from test_online import cli_overrides, run_cli

    proc = run_cli(tmp_path, *cli_overrides(tmp_path), "tau=auto")
    assert proc.returncode != 0
    assert "tau=auto needs a judge with a validation record" in proc.stderr


def test_report_draws_accuracy_intervals_on_the_pareto_plot(tmp_path):
    from deepprune import reporting

    gen, policy, ref = parts()
    run_online(gen.problems(), gen, policy, tmp_path / "run", ref, seed=3, checker=C, orders=4)
    runs = reporting.collect_runs(tmp_path / "run")
    points = reporting.tradeoff_points(runs)
    by_policy = {p["policy"]: p for p in points}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["policies"]
    for name in ("deepprune", "cons@4"):
        assert by_policy[name]["accuracy_low"] == metrics[name]["accuracy_low"]
        assert by_policy[name]["accuracy_high"] == metrics[name]["accuracy_high"]
    path = reporting.plot_pareto(
        [p["label"] for p in points], [p["tokens"] for p in points], [p["accuracy"] for p in points],
        tmp_path / "pareto.png", accuracy_low=[p["accuracy_low"] for p in points],
        accuracy_high=[p["accuracy_high"] for p in points],
    )  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
