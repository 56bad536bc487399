"""Redundancy table and the `python -m deepprune.analyze` entry, on a small trace file with hand-computed values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ExactChecker

from deepprune.redundancy import AVERAGE, redundancy_table, to_markdown, to_metrics
from deepprune.traces import Trace, write_traces

REPO = Path(__file__).resolve().parents[1]


def toy_traces() -> list[Trace]:
    """Model A: p1 answers 4,4,5 (3 pairs, 1 same); p2 answers 7 x4 (6 pairs, 6 same) plus two excluded traces.
    Model B: p1 answers 1,2 (1 pair, 0 same); p2 answers 3 x3 (3 pairs, 3 same)."""
    traces: list[Trace] = []

    def add(pid: str, model: str, answers: list[str]) -> None:
        traces.extend(Trace(pid, f"... \\boxed{{{a}}}", model=model, answer=a, finished=True) for a in answers)

    add("p1", "A", ["4", "4", "5"])
    add("p2", "A", ["7", "7", "7", "7"])
    traces.append(Trace("p2", "cut off mid-way, answer 7", model="A", answer="7", finished=False))
    traces.append(Trace("p2", "Let us think about this.", model="A"))  # no extractable answer
    add("p1", "B", ["1", "2"])
    add("p2", "B", ["3", "3", "3"])
    return traces


EXPECTED_MODELS = {
    "A": {"total_pairs": 9, "same_answer_pairs": 7, "ratio": 7 / 9, "traces": 9, "excluded_traces": 2, "problems": 2},
    "B": {"total_pairs": 4, "same_answer_pairs": 3, "ratio": 3 / 4, "traces": 5, "excluded_traces": 0, "problems": 2},
}
EXPECTED_AVERAGE = {
    "total_pairs": 13,
    "same_answer_pairs": 10,
    "ratio": 10 / 13,
    "traces": 14,
    "excluded_traces": 2,
    "problems": 2,
}


def assert_metrics(metrics: dict) -> None:
    assert sorted(metrics["models"]) == sorted(EXPECTED_MODELS)
    for model, expected in EXPECTED_MODELS.items():
        assert metrics["models"][model] == pytest.approx(expected)
    assert metrics["average"] == pytest.approx(EXPECTED_AVERAGE)


def test_table_and_metrics_by_hand() -> None:
    pytest.importorskip("deepprune.answers")  # the answer-less trace is re-extracted from its text
    rows = redundancy_table(toy_traces(), checker=ExactChecker())
    assert [r.model for r in rows] == ["A", "B", AVERAGE]
    metrics = to_metrics(rows)
    assert_metrics(metrics)
    assert metrics["mean_ratio"] == pytest.approx((7 / 9 + 3 / 4) / 2)
    table = to_markdown(rows)
    assert "| A | 9 | 7 | 0.7778 | 9 | 2 |" in table
    assert "| **Average** | 13 | 10 | 0.7692 | 14 | 2 |" in table


def test_empty_model_has_ratio_zero() -> None:
    rows = redundancy_table([Trace("p", "x", model="solo", answer="1")], checker=ExactChecker())
    assert (rows[0].total_pairs, rows[0].ratio) == (0, 0.0)
    assert rows[-1].ratio == 0.0


def test_analyze_entry_on_a_jsonl_file(tmp_path: Path) -> None:
    pytest.importorskip("deepprune.answers")
    path = write_traces(tmp_path / "traces.jsonl", toy_traces())
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepprune.analyze",
            "source=jsonl",
            f"source.path={path}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert_metrics(metrics)
    assert metrics["source"] == "deepprune.sources.jsonl.load_trace_file"
    table = (run / "redundancy.md").read_text()
    assert "| B | 4 | 3 | 0.7500 | 5 | 0 |" in table
    assert table in proc.stdout  # the entry prints the table


def test_analyze_entry_reports_a_bad_line_before_work(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem_id": "p", "text": "x"}\n{"problem_id": "p", "text": 3}\n')
    args = ["source=jsonl", f"source.path={path}", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "deepprune.analyze", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    # Hydra wraps the error raised by the source; the message still names file, line and field
    assert f"{path}:2: field" in proc.stderr and "text" in proc.stderr and "expected string" in proc.stderr
