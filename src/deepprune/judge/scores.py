"""What a judge's test writes: ``scores.jsonl`` (one schema for ``train`` and ``evaluate``) and the metric keys.

``scores.jsonl`` holds one JSON object per scored test pair, with the fields of :func:`score_record`:

- ``i``: the pair's index in the evaluation (dataset order);
- ``problem_id``: the problem both traces answer (null where the writer does not know it);
- ``model``: the generating model of the pair's traces;
- ``label``: 1 when both traces reach the same answer, else 0;
- ``score``: the judge's P(same answer);
- ``score_reference``: a zero-shot reference scorer's P(same answer) on the same pair (null without one);
- ``source``: the trace source of a mixture's pair (``data=mixture``; null otherwise): problem ids are unique only
  within a source.

``python -m deepprune.report`` reads it back with :func:`read_scores` to overlay the ROC curves of a sweep's runs.
The ``TEST_*`` keys are the test metrics ``JudgeModule`` logs and writes to ``metrics.json``; they live here, not
in :mod:`deepprune.judge.module`, so that readers (the report) need no torch to name them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: The file, in the run directory beside metrics.json.
SCORES_FILE = "scores.jsonl"

#: Field names of one record.
INDEX, PROBLEM_ID, MODEL, LABEL, SCORE, SCORE_REFERENCE, SOURCE = (
    "i",
    "problem_id",
    "model",
    "label",
    "score",
    "score_reference",
    "source",
)
FIELDS: tuple[str, ...] = (INDEX, PROBLEM_ID, MODEL, LABEL, SCORE, SCORE_REFERENCE, SOURCE)

#: metrics.json keys of a judge's test: the average over test models of AUROC and TNR@FNR, for the judge and for
#: the zero-shot reference scored on the same pairs.
TEST_AUROC = "test/auroc"
TEST_TNR = "test/tnr_at_fnr"
TEST_AUROC_REFERENCE = f"{TEST_AUROC}_reference"
TEST_TNR_REFERENCE = f"{TEST_TNR}_reference"


def score_record(
    i: int,
    label: int,
    score: float,
    model: str | None = None,
    problem_id: str | None = None,
    score_reference: float | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """One line of ``scores.jsonl``: every field present, in :data:`FIELDS` order (null where unknown)."""
    if int(label) not in (0, 1):
        raise ValueError(f"score_record: label must be 0 or 1, got {label!r} (pair {i})")
    return {
        INDEX: int(i),
        PROBLEM_ID: None if problem_id is None else str(problem_id),
        MODEL: None if model is None else str(model),
        LABEL: int(label),
        SCORE: float(score),
        SCORE_REFERENCE: None if score_reference is None else float(score_reference),
        SOURCE: None if source is None else str(source),
    }


def write_scores(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Write whole records (from :func:`score_record`) as ``scores.jsonl``, replacing the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_scores(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``scores.jsonl``, checked: each needs a numeric ``score`` and a 0/1 ``label``.

    The other fields are optional when reading (files written before this schema have only some of them) and come
    back as None. A torn last line (a writer killed mid-line) is ignored, as by every deepprune JSONL reader.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise ValueError(f"{path}:{n}: not valid JSON") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(raw).__name__}")
        score, label = raw.get(SCORE), raw.get(LABEL)
        if not _is_number(score) or label not in (0, 1):
            raise ValueError(
                f"{path}:{n}: needs a numeric {SCORE!r} and a 0/1 {LABEL!r} (fields: {', '.join(FIELDS)}); got {raw}"
            )
        records.append({**{f: raw.get(f) for f in FIELDS}, **raw, LABEL: int(label), SCORE: float(score)})
    return records


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
