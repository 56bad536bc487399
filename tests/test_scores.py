"""The scores.jsonl schema (deepprune.judge.scores): records, round trip, files of the old shape, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepprune.judge.scores import FIELDS, SCORES_FILE, read_scores, score_record, write_scores


def test_record_has_every_field_in_order():
    rec = score_record(3, True, 0.25, model="GPT-4", problem_id=17, score_reference=None)
    assert list(rec) == list(FIELDS) == ["i", "problem_id", "model", "label", "score", "score_reference", "source"]
    expected = {"i": 3, "problem_id": "17", "model": "GPT-4", "label": 1, "score": 0.25, "score_reference": None}
    assert rec == expected | {"source": None}
    assert score_record(0, 0, 0.5, source="qwen25_math")["source"] == "qwen25_math"
    with pytest.raises(ValueError, match=r"label must be 0 or 1, got 2 \(pair 5\)"):
        score_record(5, 2, 0.1)


def test_write_then_read_round_trip(tmp_path: Path):
    records = [
        score_record(i, i % 2, i / 10, model="m", problem_id=f"p{i}", score_reference=1 - i / 10) for i in range(4)
    ]
    path = write_scores(tmp_path / SCORES_FILE, records)
    assert read_scores(path) == records
    assert len(path.read_text().splitlines()) == 4


def test_files_of_the_old_shape_read_with_nulls(tmp_path: Path):
    # before the schema, train wrote model/label/score/score_reference and test fixtures only score/label
    path = tmp_path / SCORES_FILE
    path.write_text(json.dumps({"score": 0.5, "label": 0}) + "\n" + '{"score": 0.9, "label": 1, "extra": "x"}\n{"sc')
    first, second = read_scores(path)  # the torn last line is ignored
    assert first == dict.fromkeys(FIELDS) | {"label": 0, "score": 0.5}
    assert second["extra"] == "x" and second["label"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"p_same": 0.5, "label": 1}', r"scores.jsonl:2: needs a numeric 'score' and a 0/1 'label'"),
        ('{"score": 0.5, "label": 0.5}', r"scores.jsonl:2: needs a numeric"),
        ('{"score": NaN, "label": 1}', r"scores.jsonl:2: needs a numeric"),
        ("[0.5, 1]", r"scores.jsonl:2: expected a JSON object, got list"),
        ("{not json", r"scores.jsonl:2: not valid JSON"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / SCORES_FILE
    path.write_text('{"score": 0.1, "label": 0}\n' + line + '\n{"score": 0.2, "label": 1}\n')
    with pytest.raises(ValueError, match=message):
        read_scores(path)
