"""Online settings (issue 10, items 13 and 14): bad values stop with the key before any work; defaults follow
the trace source (n = traces per problem unless set, CHAMP's embedded default kept, a log line when problems are
cut by max_problems)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_online import cli_overrides, compose_online, run_cli, small_traces

from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.online.settings import check_config, traces_per_problem
from deepprune.sources import problems_from_traces


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("max_problems=-1", "max_problems=-1 is invalid: `max_problems` must be an integer >= 1 or null"),
        ("max_problems=0", "max_problems=0 is invalid"),
        ("tau=abc", "tau='abc' is invalid: `tau` must be a number in [0, 1]"),
        ("tau=1.5", "tau=1.5 is invalid: `tau` must be in [0, 1]"),
        ("n=0", "n=0 is invalid: `n` must be an integer >= 1 or null"),
        ("n=2.5", "n=2.5 is invalid"),
        ("seed=-3", "seed=-3 is invalid"),
        ("reference=cons2", "reference='cons2' is invalid: `reference` must be one of null, 'cons'"),
        ("scale.k3=0", "policy.k3=0 is invalid"),
    ],
)
def test_bad_online_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_config(compose_online(override))
    assert message in str(info.value)


def test_n_null_needs_a_replayed_source() -> None:
    check_config(compose_online("n=null"))  # replay: n comes from the traces
    with pytest.raises(ValueError, match=r"n=null takes the traces per problem .* set n="):
        check_config(compose_online("n=null", "generator=hf", "problems=champ"))


def test_defaults_follow_the_source() -> None:
    champ = compose_online()
    assert (champ.n, champ.policy.n, list(champ.source.models)) == (18, 18, ["GPT-4"])  # the embedded default
    other = compose_online("source=jsonl", "source.path=t.jsonl")
    assert (other.n, other.source.models) == (None, None)
    assert compose_online("source=jsonl", "source.path=t.jsonl", "n=5").n == 5


def test_traces_per_problem_from_the_replayed_source() -> None:
    traces = small_traces()  # 4 traces per problem
    traces = [t for t in traces if not (t.problem_id == "p3" and t.sample_id == 3)]  # p3: 3 traces
    gen = ReplayGenerator(traces, tokenizer=WhitespaceTokenizer())
    problems = problems_from_traces(traces)
    assert traces_per_problem(gen, problems, None) == 3
    assert traces_per_problem(gen, problems[:2], None) == 4
    assert traces_per_problem(gen, problems, 3) == 3
    with pytest.raises(ValueError, match=r"n=4 is more than the source has for 1 of 3 problems \(e.g. 'p3': 3\)"):
        traces_per_problem(gen, problems, 4)
    gen.allow_fewer = True
    assert traces_per_problem(gen, problems, 4) == 4


@pytest.mark.slow
def test_online_entry_takes_n_from_the_source_and_logs_the_cut(tmp_path: Path) -> None:
    overrides = [o for o in cli_overrides(tmp_path) if not o.startswith(("n=", "max_problems="))]
    proc = run_cli(tmp_path, *overrides, "max_problems=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())
    assert metrics["reference"] == "cons@4" and metrics["policies"]["deepprune"]["problems"] == 2
    log = proc.stderr + proc.stdout
    assert "max_problems=2: running the first 2 of 3 problems" in log
    assert "n=null: 4 traces per problem" in log
