"""The trace record and its JSONL file format (design.md section 3).

One JSON object per line, one reasoning trace per object::

    {"problem_id": "aime24-1", "text": "...", "model": "qwen3-4b", "sample_id": 3, "answer": "204", ...}

Required: ``problem_id`` (a JSON string; integers are rejected on purpose, write ``"60"``, so ids never
change type between files) and ``text`` (a string; may be empty or unfinished). Recognised and typed:
``model``, ``sample_id`` (string or integer), ``question``, ``gold``, ``answer``, ``num_tokens`` (integer),
``finished`` (boolean), ``dataset``, ``token_confidences`` (list of numbers) and ``meta`` (object). Every
recognised field may be ``null``/absent except the two required ones. Any other key is kept verbatim in
``Trace.extra`` and written back, so ``write -> read`` is lossless.

A malformed line (bad JSON, bytes that are not UTF-8), a missing required field, a wrong type, or a line
repeating the ``(problem_id, sample_id, model)`` of an earlier one (the error names both lines) raises
:class:`TraceFormatError` naming the file, the 1-based line and the field; so does a cut or corrupt ``.gz``
stream, at the line where it breaks off. ``on_error="skip"`` skips such lines instead (a broken ``.gz`` keeps the
lines before the break); pass a :class:`TraceLoadReport` to learn how many were skipped and why (a warning with
the first few reasons is logged either way)::

    report = TraceLoadReport()
    traces = read_traces("traces.jsonl", on_error="skip", report=report)
    report.skipped, report.errors[:3]

Blank lines are ignored. Files ending in ``.gz`` are read and written gzip-compressed.
:class:`TraceWriter` appends one flushed line per trace, so an interrupted collection keeps what it wrote
and resumes by reopening the same file (a torn last line left by a crash is cut off first).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Literal

from deepprune.runtime import drop_torn_tail, get_logger

log = get_logger(__name__)

OnError = Literal["raise", "skip"]


class TraceFormatError(ValueError):
    """A trace line or record that does not follow the schema; the message names file, line and field."""

    def __init__(self, where: str, field: str | None, problem: str) -> None:
        self.where = where
        self.field = field
        self.problem = problem
        at = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {at}{problem}")


@dataclass
class Trace:
    """One reasoning trace of one model on one problem."""

    problem_id: str
    text: str
    model: str | None = None
    sample_id: str | int | None = None
    question: str | None = None
    gold: str | None = None
    answer: str | None = None
    num_tokens: int | None = None
    finished: bool | None = None
    dataset: str | None = None
    token_confidences: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for this trace: every recognised field (``None`` included), then the unknown ones."""
        d: dict[str, Any] = {name: getattr(self, name) for name in _FIELD_NAMES}
        clash = d.keys() & self.extra.keys()
        if clash:
            raise ValueError(f"Trace.extra repeats recognised field(s) {sorted(clash)}; set the attribute instead")
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<dict>") -> Trace:
        """Validate one JSON object and build a trace; ``where`` (``"file:line"``) prefixes any error."""
        if not isinstance(d, dict):
            raise TraceFormatError(where, None, f"expected a JSON object, got {_json_type(d)}")
        for name in _REQUIRED:
            if name not in d:
                raise TraceFormatError(where, name, "required field is missing")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in d.items():
            check = _CHECKS.get(key)
            if check is None:
                extra[key] = value
            else:
                kwargs[key] = check(value, where, key)
        return cls(**kwargs, extra=extra)


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Trace) if f.name != "extra")
_REQUIRED = ("problem_id", "text")


# --- field validation -------------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _bad(where: str, key: str, expected: str, value: Any) -> TraceFormatError:
    return TraceFormatError(where, key, f"expected {expected}, got {_json_type(value)} {value!r:.60}")


def _required_str(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        hint = f' (write it as a string: "{value}")' if isinstance(value, int) and not isinstance(value, bool) else ""
        raise TraceFormatError(where, key, f"expected string, got {_json_type(value)} {value!r:.60}{hint}")
    return value


def _opt_str(value: Any, where: str, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _bad(where, key, "string or null", value)


def _opt_sample_id(value: Any, where: str, key: str) -> str | int | None:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _bad(where, key, "string, integer or null", value)


def _opt_count(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _bad(where, key, "non-negative integer or null", value)


def _opt_bool(value: Any, where: str, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _bad(where, key, "boolean or null", value)


def _opt_floats(value: Any, where: str, key: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(where, key, "array of numbers or null", value)
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise TraceFormatError(where, f"{key}[{i}]", f"expected number, got {_json_type(x)} {x!r:.60}")
    return [float(x) for x in value]


def _meta(value: Any, where: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise _bad(where, key, "object or null", value)


_CHECKS = {
    "problem_id": _required_str,
    "text": _required_str,
    "model": _opt_str,
    "sample_id": _opt_sample_id,
    "question": _opt_str,
    "gold": _opt_str,
    "answer": _opt_str,
    "num_tokens": _opt_count,
    "finished": _opt_bool,
    "dataset": _opt_str,
    "token_confidences": _opt_floats,
    "meta": _meta,
}
assert set(_CHECKS) == set(_FIELD_NAMES), "every Trace field needs a validator"


# --- reading ------------------------------------------------------------------------------------------------------


@dataclass
class TraceLoadReport:
    """What a read kept and skipped (``on_error="skip"``): counts and the error messages (file:line: field: problem).

    ``lines`` counts the non-blank lines read; ``duplicates`` the skipped lines that repeated an earlier trace.
    """

    path: str = ""
    loaded: int = 0
    skipped: int = 0
    duplicates: int = 0
    lines: int = 0
    errors: list[str] = field(default_factory=list)


def _open_text(path: Path, mode: str, gz: bool | None = None) -> IO[str]:
    if path.suffix == ".gz" if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes | TraceFormatError]]:
    """(1-based line number, bytes) per line; a cut or corrupt gzip stream ends it with an error for the next line.

    Bytes, not text: a bad UTF-8 sequence then fails its own line (with file and line) instead of the whole read.
    """
    lineno = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
        lines = iter(fh)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as e:  # gzip: truncated (EOFError), not gzip, bad data
                problem = f"gzip stream cut or corrupt after {lineno} line(s) ({e}); the rest of the file is lost"
                yield lineno + 1, TraceFormatError(f"{path}:{lineno + 1}", None, problem)
                return
            lineno += 1
            yield lineno, raw


def _decode(raw: bytes, where: str, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        raise TraceFormatError(
            where, None, f"not valid UTF-8: byte {raw[e.start]:#04x} at byte {e.start + 1} of the line"
        ) from None


def iter_traces(
    path: str | Path, on_error: OnError = "raise", report: TraceLoadReport | None = None
) -> Iterator[Trace]:
    """Yield the traces of a JSONL file one by one, validating each line (see the module docstring).

    A line repeating the ``(problem_id, sample_id, model)`` of an earlier one (``sample_id`` set) is an error that
    names both lines: a repeated sample would count twice in every per-problem statistic.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    report = report if report is not None else TraceLoadReport()
    report.path = str(path)
    first_line: dict[tuple[str, str | int, str | None], int] = {}
    for lineno, raw in _raw_lines(path):
        where = f"{path}:{lineno}"
        duplicate = False
        try:
            if isinstance(raw, TraceFormatError):
                raise raw
            line = _decode(raw, where, lineno == 1)
            if not line.strip():
                continue
            report.lines += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                torn = "" if line.endswith("\n") else " (unterminated last line: was the writer interrupted?)"
                raise TraceFormatError(where, None, f"not valid JSON: {e.msg} at column {e.colno}{torn}") from None
            trace = Trace.from_dict(obj, where)
            if trace.sample_id is not None:
                key = (trace.problem_id, trace.sample_id, trace.model)
                seen_at = first_line.setdefault(key, lineno)
                if seen_at != lineno:
                    duplicate = True
                    raise TraceFormatError(
                        where,
                        "sample_id",
                        f"duplicate trace: problem_id {key[0]!r}, sample_id {key[1]!r}, model {key[2]!r} "
                        f"is already on line {seen_at}",
                    )
        except TraceFormatError as e:
            if on_error == "raise":
                raise
            report.skipped += 1
            report.duplicates += duplicate
            report.errors.append(str(e))
            continue
        report.loaded += 1
        yield trace
    if report.skipped:
        shown = "\n  ".join(report.errors[:5])
        more = f"\n  ... and {report.skipped - 5} more" if report.skipped > 5 else ""
        log.warning("%s: skipped %d bad line(s), kept %d:\n  %s%s", path, report.skipped, report.loaded, shown, more)


def read_traces(path: str | Path, on_error: OnError = "raise", report: TraceLoadReport | None = None) -> list[Trace]:
    """Read a whole trace file; raises :class:`TraceFormatError` on the first bad line unless ``on_error="skip"``."""
    return list(iter_traces(path, on_error=on_error, report=report))


# --- writing ------------------------------------------------------------------------------------------------------


def _dumps(trace: Trace) -> str:
    return json.dumps(trace.to_dict(), ensure_ascii=False)


def write_traces(path: str | Path, traces: Iterable[Trace]) -> Path:
    """Write (replace) a trace file atomically: a temporary file renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _open_text(tmp, "w", gz=path.suffix == ".gz") as fh:
        for trace in traces:
            fh.write(_dumps(trace) + "\n")
    os.replace(tmp, path)
    return path


class TraceWriter:
    """Append traces to a JSONL file one flushed line at a time (resumable collection).

    ``append=True`` (default) keeps an existing file and adds to it; a torn last line from an interrupted
    run is cut off first so the file stays valid. ``append=False`` starts the file afresh.
    ``fsync=True`` also forces each line to disk (slower; survives a machine crash, not only a process crash)::

        with TraceWriter(run_dir / "traces.jsonl") as w:
            for trace in generate():
                w.write(trace)
    """

    def __init__(self, path: str | Path, append: bool = True, fsync: bool = False) -> None:
        self.path = Path(path)
        self.append = append
        self.fsync = fsync
        self.written = 0
        self._fh: IO[str] | None = None

    def open(self) -> TraceWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.append and self.path.suffix != ".gz":
            drop_torn_tail(self.path)
        self._fh = _open_text(self.path, "a" if self.append else "w")
        return self

    def write(self, trace: Trace) -> None:
        if self._fh is None:
            self.open()
        assert self._fh is not None
        self._fh.write(_dumps(trace) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TraceWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
