"""Problem files: one JSON object per line with a question and (optionally) a reference answer.

Key names differ between datasets (MATH-500 and AIME copies use ``problem`` and ``answer``, others ``question``,
``gold``, ...). Pass them explicitly, or leave them ``None`` to take the first of the common names below that the
first record has. Every later line must have the same keys; a line without the question key stops the load with
an error naming file, line and key, before any generation starts. ``.jsonl.gz`` files are read compressed
(GPQA is distributed that way so its questions never sit in plain text; nothing here logs a question).

``match`` keeps only rows whose fields match regular expressions, for example ``{"url": "2024_AIME"}`` picks AIME
2024 out of a file holding 2022 to 2024. ``id_prefix`` makes ids unique across files (``"aime24/"`` + ``"60"``).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepprune.runtime import get_logger
from deepprune.sources import Problem

log = get_logger(__name__)

QUESTION_KEYS: tuple[str, ...] = ("problem", "question", "Question", "prompt", "query", "input")
ANSWER_KEYS: tuple[str, ...] = ("answer", "gold", "final_answer", "expected_answer", "target", "Answer")
ID_KEYS: tuple[str, ...] = ("problem_id", "id", "unique_id", "idx", "ID")


class ProblemFormatError(ValueError):
    """A problem file that cannot be read; the message names file, line and key."""


def _detect(record: Mapping[str, Any], candidates: tuple[str, ...]) -> str | None:
    return next((k for k in candidates if k in record), None)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value)
    return str(value)  # numbers: AIME answers are often stored as integers


def read_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line raises naming file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProblemFormatError(f"{path}:{lineno}: not valid JSON: {e.msg} at column {e.colno}") from None
            if not isinstance(obj, dict):
                raise ProblemFormatError(f"{path}:{lineno}: expected a JSON object")
            rows.append((lineno, obj))
    return rows


def load_problem_file(
    path: str | Path,
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    limit: int | None = None,
    dataset: str | None = None,
    id_prefix: str = "",
    match: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Read problems from a JSONL file (see the module docstring for key detection and filters).

    ``problem_id`` is ``id_prefix`` + the id field as a string, or the 1-based line number when the file has no
    id field. ``gold`` is ``None`` when there is no answer field. ``dataset`` defaults to the file name stem.
    Other fields go to ``meta``. ``limit`` keeps the first N problems after filtering.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"problem file not found: {path} (put the file there or set the path)")
    records = [(f"{path}:{lineno}", str(lineno), row) for lineno, row in read_json_lines(path)]
    return problems_from_records(
        records,
        source=str(path),
        question_key=question_key,
        answer_key=answer_key,
        id_key=id_key,
        limit=limit,
        dataset=dataset if dataset is not None else path.name.split(".")[0],
        id_prefix=id_prefix,
        match=match,
    )


def problems_from_records(
    records: Sequence[tuple[str, str, Mapping[str, Any]]],
    source: str,
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    limit: int | None = None,
    dataset: str | None = None,
    id_prefix: str = "",
    match: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Problems from ``(where, default_id, record)`` triples; ``where`` (``"file:line"``) prefixes every error.

    All records are checked before any is returned, so a bad record past ``limit`` still fails now rather than
    in a later, longer run.
    """
    if not records:
        raise ProblemFormatError(f"{source}: no problems")
    first_where, _, first = records[0]
    q_key = question_key or _detect(first, QUESTION_KEYS)
    if q_key is None or q_key not in first:
        tried = [question_key] if question_key else list(QUESTION_KEYS)
        raise ProblemFormatError(
            f"{first_where}: no question field (tried {tried}; keys present: {sorted(first)}); set question_key"
        )
    a_key = answer_key or _detect(first, ANSWER_KEYS)
    if answer_key is not None and answer_key not in first:
        raise ProblemFormatError(f"{first_where}: answer key '{answer_key}' missing (keys: {sorted(first)})")
    if a_key is None:
        log.warning("%s: no answer field among %s; gold answers are unknown", source, list(ANSWER_KEYS))
    i_key = id_key or _detect(first, ID_KEYS)
    if id_key is not None and id_key not in first:
        raise ProblemFormatError(f"{first_where}: id key '{id_key}' missing (keys: {sorted(first)})")
    patterns = {k: re.compile(v) for k, v in (match or {}).items()}

    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for where, default_id, row in records:
        for key in (q_key, a_key, i_key):
            if key is not None and key not in row:
                raise ProblemFormatError(f"{where}: key '{key}' missing (keys present: {sorted(row)})")
        question = row[q_key]
        if not isinstance(question, str) or not question.strip():
            raise ProblemFormatError(f"{where}: key '{q_key}' must be a non-empty string")
        if any(not p.search(str(row.get(k, ""))) for k, p in patterns.items()):
            continue
        pid = id_prefix + (str(row[i_key]) if i_key is not None else default_id)
        if pid in seen:
            raise ProblemFormatError(f"{where}: duplicate problem id {pid!r} (first at {seen[pid]})")
        seen[pid] = where
        meta = {k: v for k, v in row.items() if k not in (q_key, a_key, i_key)}
        gold = _as_text(row[a_key]) if a_key is not None else None
        problems.append(Problem(problem_id=pid, question=question, gold=gold, dataset=dataset, meta=meta))
    if not problems:
        raise ProblemFormatError(f"{source}: no problem matched {dict(match or {})}")
    problems = problems[:limit] if limit is not None else problems
    log.info("%s: %d problems (question key %r, answer key %r, id key %r)", source, len(problems), q_key, a_key, i_key)
    return problems
