"""Answer-list CSV files: per problem, the final answers of repeated runs of a model and their length statistics.

Such a file has no trace text, only what a simulation of the online policies needs (``generator=simulated``):
each problem's empirical answer distribution and how long its traces are. One row per problem; the column
names default to those of ``thought-branches``' ``math_cots_summary_qwen14.csv`` (about 10 answers of
DeepSeek-R1-Distill-Qwen-14B on each of 1010 MATH level-5 problems):

- ``problem`` (question), ``gt_answer`` (reference answer; empty means unknown), ``pn`` (problem id),
- ``answers``: a Python-literal or JSON list of answer strings (``None``/``null`` for a run without an answer),
- ``M_tokens``, ``med_tokens``, ``std_tokens``: mean, median and standard deviation of the runs' lengths in
  generated tokens (optional: a file without them leaves the length model's defaults to the simulator).

Every other column is kept in :attr:`AnswerList.meta` as text. A missing column, an unreadable answer list or
a repeated id raises :class:`AnswerListFormatError` naming the file, the row's first line and the column, before
any simulation starts. That file is sorted by accuracy: ``shuffle_seed`` (a seeded permutation of the rows)
makes the first ``limit`` problems a fair sample rather than the hardest ones.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepprune.sources import Problem

__all__ = ["AnswerList", "AnswerListFormatError", "load_answer_lists"]


class AnswerListFormatError(ValueError):
    """An answer-list file that cannot be read; the message names file, line and column."""


@dataclass
class AnswerList:
    """One problem's empirical answers (one per run) and its length statistics (generated tokens)."""

    problem_id: str
    question: str
    gold: str | None
    answers: list[str | None]
    mean_tokens: float | None = None
    median_tokens: float | None = None
    std_tokens: float | None = None
    lengths: list[int] | None = None  # per-answer lengths, when the source has them (answers[i] took lengths[i])
    dataset: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.answers:
            raise ValueError(f"answer list of problem {self.problem_id!r} is empty")
        if self.lengths is not None and len(self.lengths) != len(self.answers):
            raise ValueError(
                f"problem {self.problem_id!r}: {len(self.lengths)} lengths for {len(self.answers)} answers"
            )

    def problem(self) -> Problem:
        return Problem(self.problem_id, self.question, self.gold, self.dataset, dict(self.meta))


def _parse_list(text: str, where: str) -> list[str | None]:
    text = text.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as err:
            raise AnswerListFormatError(f"{where}: not a Python or JSON list ({type(err).__name__})") from None
    if not isinstance(value, list | tuple):
        raise AnswerListFormatError(f"{where}: expected a list, got {type(value).__name__}")
    return [None if a is None else str(a) for a in value]


def _parse_float(text: str | None, where: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise AnswerListFormatError(f"{where}: not a number: {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise AnswerListFormatError(f"{where}: must be a finite number >= 0, got {value}")
    return value


def load_answer_lists(
    path: str | Path,
    limit: int | None = None,
    shuffle_seed: int | None = None,
    id_key: str = "pn",
    question_key: str = "problem",
    gold_key: str = "gt_answer",
    answers_key: str = "answers",
    mean_key: str | None = "M_tokens",
    median_key: str | None = "med_tokens",
    std_key: str | None = "std_tokens",
    id_prefix: str = "",
    dataset: str | None = None,
) -> list[AnswerList]:
    """Read an answer-list CSV (see the module docstring); ``limit`` keeps the first N rows after the shuffle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"answer-list file {path} does not exist (generator.answer_lists.path)")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or null, got {limit}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the prompt column holds whole problem statements
    rows: list[AnswerList] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        required = [id_key, question_key, gold_key, answers_key]
        optional = [k for k in (mean_key, median_key, std_key) if k]
        missing = [k for k in required if k not in columns]
        if missing:
            raise AnswerListFormatError(f"{path}:1: missing column(s) {missing}; the header has {columns}")
        stats = {k: (k if k in columns else None) for k in optional}
        line = 2  # the first line of the next record (records may span lines)
        for rec in reader:
            where = f"{path}:{line}"
            pid = f"{id_prefix}{rec[id_key]}"
            if not str(rec[id_key]).strip():
                raise AnswerListFormatError(f"{where}: empty {id_key!r}")
            if pid in seen:
                raise AnswerListFormatError(f"{where}: {id_key!r} {pid!r} repeats the row at line {seen[pid]}")
            seen[pid] = line
            answers = _parse_list(rec[answers_key] or "", f"{where}: column {answers_key!r}")
            if not answers:
                raise AnswerListFormatError(f"{where}: column {answers_key!r} is an empty list")

            def stat(key: str | None, rec: dict[str, str] = rec, where: str = where) -> float | None:
                col = stats.get(key) if key else None
                return _parse_float(rec.get(col), f"{where}: column {col!r}") if col else None

            gold = (rec[gold_key] or "").strip() or None
            kept = {k: v for k, v in rec.items() if k not in (id_key, question_key, gold_key, answers_key, *optional)}
            rows.append(
                AnswerList(
                    problem_id=pid,
                    question=rec[question_key] or "",
                    gold=gold,
                    answers=answers,
                    mean_tokens=stat(mean_key),
                    median_tokens=stat(median_key),
                    std_tokens=stat(std_key),
                    dataset=dataset,
                    meta={k: v for k, v in kept.items() if k is not None},
                )
            )
            line = reader.line_num + 1
    if not rows:
        raise AnswerListFormatError(f"{path}: no rows")
    if shuffle_seed is not None:
        order = np.random.default_rng([int(shuffle_seed), 0xA115]).permutation(len(rows))
        rows = [rows[i] for i in order]
    return rows[:limit] if limit is not None else rows
