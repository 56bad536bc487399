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


# --- hostile input (issue 10): duplicates, bad bytes, broken gzip, empty files ------------------------------------


def test_duplicate_sample_names_both_lines(tmp_path: Path) -> None:
    lines = [
        '{"problem_id": "a", "sample_id": 0, "model": "m", "text": "x"}',
        '{"problem_id": "a", "sample_id": 1, "model": "m", "text": "y"}',
        '{"problem_id": "a", "sample_id": 0, "model": "other", "text": "z"}',  # another model: not a duplicate
        '{"problem_id": "a", "sample_id": 0, "model": "m", "text": "x again"}',
    ]
    path = write_lines(tmp_path / "t.jsonl", lines)
    with pytest.raises(TraceFormatError) as info:
        read_traces(path)
    assert info.value.where == f"{path}:4" and info.value.field == "sample_id"
    assert "is already on line 1" in str(info.value)
    report = TraceLoadReport()
    traces = read_traces(path, on_error="skip", report=report)
    assert [t.text for t in traces] == ["x", "y", "z"]
    assert (report.loaded, report.skipped, report.duplicates) == (3, 1, 1)


def test_traces_without_sample_id_are_never_duplicates(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ['{"problem_id": "a", "text": "x"}'] * 3)
    assert len(read_traces(path)) == 3


def test_non_utf8_bytes_name_file_and_line_and_skip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"problem_id": "a", "text": "ok"}\n'
        b'{"problem_id": "b", "text": "abc\xe9"}\n'
        b'{"problem_id": "c", "text": "3"}\n'
    )
    with pytest.raises(TraceFormatError, match=r"t\.jsonl:2: not valid UTF-8: byte 0xe9 at byte 33"):
        read_traces(path)
    report = TraceLoadReport()
    assert [t.problem_id for t in read_traces(path, on_error="skip", report=report)] == ["a", "c"]
    assert report.errors[0].startswith(f"{path}:2: not valid UTF-8")


def test_utf8_bom_on_the_first_line_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"problem_id": "a", "text": "x"}\n')
    assert read_traces(path) == [Trace("a", "x")]


def test_truncated_gzip_names_file_and_line_and_keeps_the_lines_before(tmp_path: Path) -> None:
    traces = [Trace(f"p{i}", "some reasoning text " * 40, sample_id=i) for i in range(50)]
    whole = write_traces(tmp_path / "t.jsonl.gz", traces)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(TraceFormatError, match=r"cut\.jsonl\.gz:\d+: gzip stream cut or corrupt after \d+ line"):
        read_traces(cut)
    report = TraceLoadReport()
    kept = read_traces(cut, on_error="skip", report=report)
    assert 0 < len(kept) < 50 and kept == traces[: len(kept)]
    assert report.skipped == 1 and report.errors[0].startswith(f"{cut}:{len(kept) + 1}: gzip stream cut")
    not_gzip = write_lines(tmp_path / "plain.jsonl.gz", ['{"problem_id": "a", "text": "x"}'])
    with pytest.raises(TraceFormatError, match=r"plain\.jsonl\.gz:1: gzip stream cut or corrupt after 0 line"):
        read_traces(not_gzip)


def test_trace_source_says_no_traces_in_the_file(tmp_path: Path) -> None:
    from deepprune.sources.jsonl import load_trace_file

    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(ValueError, match=r"no traces in .*empty\.jsonl: the file is empty"):
        load_trace_file(empty)
    bad = write_lines(tmp_path / "bad.jsonl", ["nope", '{"text": "x"}'])
    with pytest.raises(ValueError, match=r"no traces in .*bad\.jsonl: all 2 line\(s\) were skipped.*bad\.jsonl:1"):
        load_trace_file(bad, on_error="skip")
    ok = write_lines(tmp_path / "ok.jsonl", ['{"problem_id": "a", "text": "x"}'])
    for limit in (0, -1):
        expected = rf"max_problems={limit} is invalid: `max_problems` must be an integer >= 1 or null"
        with pytest.raises(ValueError, match=expected):
            load_trace_file(ok, max_problems=limit)


# --- property: every valid trace is kept, every bad line is named ---------------------------------------------------

_BAD_LINES = [
    b"not json",
    b'{"problem_id": "x", "te',
    b'{"text": "no id"}',
    b'{"problem_id": 7, "text": "int id"}',
    b'{"problem_id": "x", "text": "t", "num_tokens": -3}',
    b'{"problem_id": "x", "text": "\xff\xfe"}',
    b"[1, 2, 3]",
]


def _line_plan():
    from hypothesis import strategies as st

    kinds = st.one_of(
        st.tuples(st.just("good"), st.text(max_size=30)),
        st.tuples(st.just("bad"), st.sampled_from(_BAD_LINES)),
        st.tuples(st.just("dup"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("blank"), st.sampled_from([b"", b"   ", b"\t"])),
    )
    return st.lists(kinds, max_size=25)


def test_reader_keeps_every_valid_trace_and_names_every_bad_line() -> None:
    import tempfile

    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plan=_line_plan())
    def check(plan: list[tuple[str, object]]) -> None:
        lines: list[bytes] = []
        good: list[Trace] = []
        bad_lines: list[int] = []
        for kind, arg in plan:
            if kind == "good":
                trace = Trace(problem_id=f"p{len(lines)}", text=str(arg), sample_id=0, model="m")
                good.append(trace)
                lines.append(json.dumps(trace.to_dict(), ensure_ascii=False).encode("utf-8"))
            elif kind == "dup" and good:
                twin = good[int(arg) % len(good)]
                lines.append(json.dumps({**twin.to_dict(), "text": "a repeat"}).encode("utf-8"))
                bad_lines.append(len(lines))
            elif kind == "bad":
                lines.append(arg)  # type: ignore[arg-type]
                bad_lines.append(len(lines))
            elif kind == "blank":
                lines.append(arg)  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in lines))
            report = TraceLoadReport()
            assert read_traces(path, on_error="skip", report=report) == good
            assert [int(e.split(": ")[0].rsplit(":", 1)[1]) for e in report.errors] == bad_lines
            assert (report.loaded, report.skipped) == (len(good), len(bad_lines))
            if bad_lines:
                with pytest.raises(TraceFormatError) as info:
                    read_traces(path)
                assert info.value.where == f"{path}:{bad_lines[0]}"
            else:
                assert read_traces(path) == good

    check()
