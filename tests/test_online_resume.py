"""Online resume (issue 10, item 7): finished problems are reused only from a run with the same settings.

``fingerprint.json`` beside ``results.jsonl`` holds the settings; another tau, n or seed (or results without a
fingerprint) stops the run and names what differs, instead of mixing results under a mislabelled column.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_online import C, cli_overrides, run_cli, runner_parts

from deepprune.online.judges import ConstantJudge
from deepprune.online.policies import ConsensusPolicy, DeepPrunePolicy
from deepprune.online.runner import FINGERPRINT_FILE, RESULTS_FILE, run_online
from deepprune.runtime import read_jsonl_records


def deepprune(tau: float = 0.5, n: int = 4) -> DeepPrunePolicy:
    _, policy, _ = runner_parts()
    policy.tau, policy.n = tau, n
    return policy


def test_same_settings_resume_and_others_are_refused(tmp_path: Path) -> None:
    gen, _, ref = runner_parts()
    problems = gen.problems()
    first = tmp_path / "first"
    run_online(problems[:2], gen, deepprune(), first, ref, seed=1, checker=C)
    stored = json.loads((first / FINGERPRINT_FILE).read_text())
    assert stored["settings"]["seed"] == 1 and stored["settings"]["policy"]["tau"] == 0.5
    assert stored["settings"]["policy"]["judge"] == {"class": "ConstantJudge", "p": 1.0}

    same = tmp_path / "same"
    run_online(problems, gen, deepprune(), same, ref, seed=1, resume_dir=first, checker=C)
    assert [r["problem_id"] for r in read_jsonl_records(same / RESULTS_FILE)] == ["p1", "p2", "p3"]

    other_judge = DeepPrunePolicy(ConstantJudge(0.2), n=4, k2=2, prefix=deepprune().prefix)
    cases = [
        (dict(policy=deepprune(tau=0.8)), "policy.tau: 0.5 -> 0.8"),
        (dict(seed=2), "seed: 1 -> 2"),
        (dict(policy=deepprune(n=3), ref=ConsensusPolicy(n=3, checker=C)), "policy.n: 4 -> 3"),
        (dict(policy=other_judge), "policy.judge.p: 1.0 -> 0.2"),
    ]
    for i, (change, message) in enumerate(cases):
        args = {"policy": deepprune(), "ref": ref, "seed": 1, **change}
        out = tmp_path / f"other{i}"
        with pytest.raises(ValueError, match="was made with other settings") as info:
            run_online(problems, gen, args["policy"], out, args["ref"], seed=args["seed"], resume_dir=first, checker=C)
        assert message in str(info.value)
        assert not (out / RESULTS_FILE).exists()  # nothing copied, nothing run
        # the same dir rerun with other settings is refused too
        with pytest.raises(ValueError, match=r"first.*was made with other settings"):
            run_online(problems, gen, args["policy"], first, args["ref"], seed=args["seed"], checker=C)
    assert len(read_jsonl_records(first / RESULTS_FILE)) == 2  # untouched


def test_results_without_a_fingerprint_are_not_reused(tmp_path: Path) -> None:
    gen, policy, ref = runner_parts()
    old = tmp_path / "old"
    run_online(gen.problems()[:1], gen, policy, old, ref, seed=1, checker=C)
    (old / FINGERPRINT_FILE).unlink()  # as a run from before fingerprints left it
    with pytest.raises(ValueError, match=r"has results but no fingerprint\.json"):
        run_online(gen.problems(), gen, policy, tmp_path / "new", ref, seed=1, resume_dir=old, checker=C)


@pytest.mark.slow
def test_online_entry_refuses_a_resume_with_another_tau(tmp_path: Path) -> None:
    base = cli_overrides(tmp_path)
    first = run_cli(tmp_path, *base, "tau=0.2")
    assert first.returncode == 0, first.stderr[-3000:]
    job = tmp_path / "sweep" / "0"
    settings = json.loads((job / FINGERPRINT_FILE).read_text())["settings"]
    assert settings["tau"] == 0.2 and settings["policy"]["tau"] == 0.2 and "paths" not in settings
    again = [o for o in base if not o.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={tmp_path / 'again'}"]
    same = run_cli(tmp_path, *again, "tau=0.2", f"resume_dir={job}")
    assert same.returncode == 0, same.stderr[-3000:]
    assert re.search(r"resuming: (\d+) of \1 ", same.stdout + same.stderr)  # everything reused, nothing rerun
    copied = read_jsonl_records(tmp_path / "again" / "0" / RESULTS_FILE)
    assert copied == read_jsonl_records(job / RESULTS_FILE)
    other = run_cli(tmp_path, *again, "tau=0.8", f"resume_dir={job}")
    assert other.returncode != 0
    log = other.stdout + other.stderr
    assert "was made with other settings" in log and "tau: 0.2 -> 0.8" in log
