"""The one table writer (deepprune.tables) and the three tables written with it: redundancy, online run, sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from deepprune.online.accounting import format_table
from deepprune.online.runner import metrics_table, summarize_sweep
from deepprune.redundancy import RedundancyRow, to_markdown
from deepprune.tables import Table, format_cell, read_csv, write_csv
from deepprune.tables import to_markdown as markdown_table


def test_cells_by_type():
    assert [format_cell(v) for v in (None, True, 0.5, 3, "a|b\nc", math.nan)] == [
        "", "true", "0.5000", "3", "a\\|b c", "nan"
    ]  # fmt: skip
    assert format_cell(12345, intfmt=",") == "12,345"
    assert format_cell(2.5, floatfmt=lambda v: f"<{v}>") == "<2.5>"
    assert format_cell(None, missing="-") == "-"


def test_markdown_right_aligned_columns_and_record_rows():
    table = Table.from_records([{"m": "A", "n": 1200, "r": 0.25}, {"m": "B"}], ["m", "n", "r"])
    assert table.rows == [["A", 1200, 0.25], ["B", None, None]]
    assert markdown_table(table, floatfmt=".2f", intfmt=",", missing="-", right_align=["n", "r"]) == (
        "| m | n | r |\n|---|---:|---:|\n| A | 1,200 | 0.25 |\n| B | - | - |\n"
    )
    with pytest.raises(ValueError, match=r"right_align names columns the table lacks: \['x'\]"):
        markdown_table(table, right_align=["x"])


def test_read_csv_of_an_empty_file_names_it(tmp_path: Path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match=r"e.csv: empty CSV file"):
        read_csv(tmp_path / "e.csv")
    table = Table(["a"], [])
    assert read_csv(write_csv(table, tmp_path / "h.csv")) == table


def test_redundancy_table_in_the_papers_layout():
    rows = [
        RedundancyRow("QwQ|32B", 13785, 12569, 12569 / 13785, 40, 2, 5),
        RedundancyRow("Average", 3, 2, 2 / 3, 4, 0, 1),
    ]
    assert to_markdown(rows) == (
        "| Model | Total Pairs | Same Answer Pairs | Similarity Ratio | Traces | Excluded Traces |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| QwQ\\|32B | 13,785 | 12,569 | 0.9118 | 40 | 2 |\n"  # a "|" in a name no longer breaks the row
        "| **Average** | 3 | 2 | 0.6667 | 4 | 0 |\n"
    )


def test_online_table_formats_shares_counts_and_gaps():
    rows = [
        {"policy": "deepprune", "problems": 1234, "accuracy": 0.5, "tokens_mean": 12345.67, "token_reduction": -0.25},
        {"policy": "cons@8", "problems": 3, "accuracy": 1.0, "tokens_mean": 2.0},
    ]
    text = format_table(rows, ["policy", "problems", "accuracy", "tokens_mean", "token_reduction"])
    assert text == (
        "| policy | problems | accuracy | tokens_mean | token_reduction |\n"
        "|---|---|---|---|---|\n"
        "| deepprune | 1,234 | 0.500 | 12,345.7 | -0.250 |\n"
        "| cons@8 | 3 | 1.000 | 2.0 | - |"
    )  # no final newline: the sweep summary file and the log line add their own


def test_run_table_puts_extra_columns_first():
    metrics = {"policies": {"deepprune": {"problems": 2, "accuracy": 0.5, "tokens_mean": 10.0, "pass_at_k": 1.0}}}
    header, _, row = metrics_table(metrics, {"tau": 0.5}).splitlines()
    assert header == (
        "| tau | policy | problems | orders | accuracy | accuracy_ci | tokens_mean | token_reduction | "
        "token_reduction_ci | diff_vs_reference | judge_calls_mean | pass_at_k |"
    )
    assert row == "| 0.500 | deepprune | 2 | - | 0.500 | - | 10.0 | - | - | - | - | 1.000 |"


def test_sweep_summary_one_row_per_policy_of_each_job(tmp_path: Path):
    for job, tau in enumerate([0.25, 0.75]):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(f"- tau={tau}\n")
        policies = {"deepprune": {"problems": 2, "accuracy": tau}, "cons@4": {"problems": 2, "accuracy": 0.5}}
        (tmp_path / str(job) / "metrics.json").write_text(json.dumps({"policies": policies}))
    lines = summarize_sweep(tmp_path).splitlines()
    assert lines[2:] == [
        "| 0 | 0.25 | deepprune | 2 | - | 0.250 | - | - | - | - | - | - | - |",
        "| 0 | 0.25 | cons@4 | 2 | - | 0.500 | - | - | - | - | - | - | - |",
        "| 1 | 0.75 | deepprune | 2 | - | 0.750 | - | - | - | - | - | - | - |",
        "| 1 | 0.75 | cons@4 | 2 | - | 0.500 | - | - | - | - | - | - | - |",
    ]
    assert summarize_sweep(tmp_path / "nothing") is None
