"""Trace schema: validation errors name file, line and field; write -> read is lossless; resumable writer."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from deepprune.traces import (
    Trace,
    TraceFormatError,
    TraceLoadReport,
    TraceWriter,
    iter_traces,
    read_traces,
    write_traces,
)


def full_trace() -> Trace:
    return Trace(
        problem_id="p1",
        text="First, 2+2. Wait, so the answer is \\boxed{4}.\nÜnïcode ✓",
        model="m-a",
        sample_id=3,
        question="What is 2+2?",
        gold="4",
        answer="4",
        num_tokens=17,
        finished=True,
        dataset="toy",
        token_confidences=[0.5, 1.25, 3.0],
        meta={"seed": 7, "nested": {"x": [1, 2]}},
        extra={"judge_score": 0.9, "tags": ["a", None]},
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_keeps_every_field_and_unknown_ones(tmp_path: Path) -> None:
    traces = [full_trace(), Trace(problem_id="p2", text="")]
    path = write_traces(tmp_path / "t.jsonl", traces)
    back = read_traces(path)
    assert back == traces
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["judge_score"] == 0.9 and first["tags"] == ["a", None]  # unknown fields written at top level
    assert "extra" not in first
    # a second round trip is byte-identical
    write_traces(tmp_path / "t2.jsonl", back)
    assert (tmp_path / "t2.jsonl").read_bytes() == path.read_bytes()


def test_round_trip_gzip(tmp_path: Path) -> None:
    path = write_traces(tmp_path / "t.jsonl.gz", [full_trace()])
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert json.loads(fh.readline())["problem_id"] == "p1"
    assert read_traces(path) == [full_trace()]


def test_minimal_line_gets_defaults(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ['{"problem_id": "a", "text": "x", "token_confidences": [1, 2]}'])
    (t,) = read_traces(path)
    assert t == Trace(problem_id="a", text="x", token_confidences=[1.0, 2.0])
    assert isinstance(t.token_confidences[0], float)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"text": "x"}', "problem_id"),
        ('{"problem_id": "a"}', "text"),
        ('{"problem_id": 7, "text": "x"}', "problem_id"),
        ('{"problem_id": "a", "text": null}', "text"),
        ('{"problem_id": "a", "text": "x", "num_tokens": "12"}', "num_tokens"),
        ('{"problem_id": "a", "text": "x", "num_tokens": -1}', "num_tokens"),
        ('{"problem_id": "a", "text": "x", "finished": 1}', "finished"),
        ('{"problem_id": "a", "text": "x", "sample_id": true}', "sample_id"),
        ('{"problem_id": "a", "text": "x", "gold": 4}', "gold"),
        ('{"problem_id": "a", "text": "x", "meta": [1]}', "meta"),
        ('{"problem_id": "a", "text": "x", "token_confidences": [0.1, "x"]}', "token_confidences[1]"),
    ],
)
def test_bad_field_names_file_line_and_field(tmp_path: Path, line: str, field: str) -> None:
    good = '{"problem_id": "ok", "text": "fine"}'
    path = write_lines(tmp_path / "bad.jsonl", [good, "", line])
    with pytest.raises(TraceFormatError) as info:
        read_traces(path)
    err = info.value
    assert err.where == f"{path}:3"  # blank line 2 is skipped but still counted
    assert err.field == field
    assert str(err).startswith(f"{path}:3: field '{field}': ")


def test_int_problem_id_error_suggests_a_string(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ['{"problem_id": 60, "text": "x"}'])
    with pytest.raises(TraceFormatError, match='write it as a string: "60"'):
        read_traces(path)


def test_malformed_json_and_non_object(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ['{"problem_id": "a", "text": "x"}', '{"problem_id": "a", "te'])
    with pytest.raises(TraceFormatError, match=r"t\.jsonl:2: not valid JSON"):
        read_traces(path)
    path = write_lines(tmp_path / "u.jsonl", ["[1, 2]"])
    with pytest.raises(TraceFormatError, match=r"u\.jsonl:1: expected a JSON object, got array"):
        read_traces(path)


def test_skip_counts_and_logs_bad_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [
        '{"problem_id": "a", "text": "1"}',
        "not json",
        '{"problem_id": "b"}',
        '{"problem_id": "c", "text": "3"}',
        '{"problem_id": "d", "text": "4", "finished": "yes"}',
    ]
    path = write_lines(tmp_path / "t.jsonl", lines)
    report = TraceLoadReport()
    with caplog.at_level(logging.WARNING, logger="deepprune.traces"):
        traces = read_traces(path, on_error="skip", report=report)
    assert [t.problem_id for t in traces] == ["a", "c"]
    assert (report.loaded, report.skipped) == (2, 3)
    assert [e.split(": ")[0] for e in report.errors] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "field 'text'" in report.errors[1] and "field 'finished'" in report.errors[2]
    assert "skipped 3 bad line(s), kept 2" in caplog.text


def test_on_error_is_checked_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        read_traces(tmp_path / "x.jsonl", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="x.jsonl"):
        read_traces(tmp_path / "x.jsonl")


def test_to_dict_rejects_extra_shadowing_a_field() -> None:
    with pytest.raises(ValueError, match="answer"):
        Trace(problem_id="a", text="x", extra={"answer": "5"}).to_dict()


def test_writer_appends_flushes_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.jsonl"
    with TraceWriter(path) as w:
        w.write(Trace("a", "1"))
        # flushed per line: readable while the writer is still open
        assert [t.problem_id for t in read_traces(path)] == ["a"]
        w.write(Trace("b", "2"))
    assert w.written == 2
    # a crash mid-write leaves a torn line; reopening cuts it off and appends after the last complete line
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"problem_id": "c", "te')
    with pytest.raises(TraceFormatError, match="unterminated last line"):
        read_traces(path)
    with TraceWriter(path) as w:
        w.write(Trace("c", "3"))
    assert [t.problem_id for t in iter_traces(path)] == ["a", "b", "c"]
    # append=False starts over
    with TraceWriter(path, append=False) as w:
        w.write(Trace("z", "9"))
    assert [t.problem_id for t in read_traces(path)] == ["z"]
