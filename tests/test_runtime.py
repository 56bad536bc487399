"""Tests for the run-time plumbing: atomic JSON, resumable JSONL appends, torn-line recovery."""

import json

import pytest

from deepprune.runtime import append_jsonl, read_jsonl_records, write_json, write_metrics


def test_write_json_round_trip_and_no_temp_left(tmp_path):
    path = write_json(tmp_path / "sub" / "m.json", {"auroc": 0.75, "n": 3})
    assert json.loads(path.read_text()) == {"auroc": 0.75, "n": 3}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.json"]


def test_write_metrics_names_the_file(tmp_path):
    assert write_metrics({"a": 1}, tmp_path) == tmp_path / "metrics.json"


def test_append_then_read_keeps_order(tmp_path):
    path = tmp_path / "r.jsonl"
    for i in range(3):
        append_jsonl(path, {"i": i})
    assert read_jsonl_records(path) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"i": 0}\n{"i": 1, "tex')  # a crash mid-write
    assert read_jsonl_records(path) == [{"i": 0}]
    append_jsonl(path, {"i": 1})
    assert path.read_text() == '{"i": 0}\n{"i": 1}\n'


def test_corrupt_line_in_the_middle_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl:2"):
        read_jsonl_records(path)


def test_missing_file_reads_as_empty(tmp_path):
    assert read_jsonl_records(tmp_path / "absent.jsonl") == []
