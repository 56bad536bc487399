"""Adapters that turn a dataset into traces or problems.

Every adapter returns plain lists of :class:`deepprune.traces.Trace` or :class:`Problem`, so the rest of the
code never sees where the data came from. Hydra configs under ``conf/source/`` (traces) and ``conf/problems/``
(problems) point ``_target_`` at one of these functions:

- :mod:`deepprune.sources.jsonl`: trace files in the JSONL format of :mod:`deepprune.traces`.
- :mod:`deepprune.sources.problems`: problem files (JSONL with a question and a reference answer per line).
- :mod:`deepprune.sources.champ`: the CHAMP competition-math set shipped by the ``champ-dataset`` package
  (270 problems, 19,440 real solutions by 4 models), usable offline.
- :mod:`deepprune.sources.hf`: Hugging Face ``datasets`` (for users with a network or a local copy).
- :mod:`deepprune.sources.samples`: multi-sample result files as their harnesses write them (Qwen2.5-Math's
  ``code[]`` lists, SkyThought's one file per model), answers extracted by :mod:`deepprune.answers`.
- :mod:`deepprune.sources.answer_lists`: answers-only CSVs (thought-branches: answer lists and length statistics
  per problem), the input of ``generator=simulated``.
- :mod:`deepprune.sources.samples`: multi-sample evaluation-harness outputs read as they come, such as the
  development sets in ``../shared/data/raw/`` (Qwen2.5-Math, 8 samples per problem; SkyThought long chain of
  thought, one file per model); answers are extracted by :mod:`deepprune.answers`, which judges cut traces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deepprune.traces import Trace


@dataclass
class Problem:
    """One question with its reference answer (``gold`` is ``None`` when unknown)."""

    problem_id: str
    question: str
    gold: str | None = None
    dataset: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def problems_from_traces(traces: Iterable[Trace]) -> list[Problem]:
    """The distinct problems of some traces, first-seen order (question and gold from the first trace having them)."""
    problems: dict[str, Problem] = {}
    for t in traces:
        p = problems.get(t.problem_id)
        if p is None:
            problems[t.problem_id] = Problem(t.problem_id, t.question or "", t.gold, t.dataset)
            continue
        if not p.question and t.question:
            p.question = t.question
        if p.gold is None and t.gold is not None:
            p.gold = t.gold
    return list(problems.values())
