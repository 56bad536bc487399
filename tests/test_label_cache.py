"""The datamodule's on-disk label cache (CachedAnswerClasses) keeps verdicts of another checker version out."""

from __future__ import annotations

from pathlib import Path

from deepprune.answers import AnswerChecker
from deepprune.judge.datamodule import CachedAnswerClasses


class QuoteBlindChecker:
    """Exact string classes; ``SEMANTICS_VERSION`` 1 keeps quotes, 2 strips them (as AnswerChecker 2 does)."""

    def __init__(self, version: int) -> None:
        self.SEMANTICS_VERSION = version

    def classes(self, answers):
        ids: dict[str, int] = {}
        norm = (lambda a: a.strip("\"'")) if self.SEMANTICS_VERSION >= 2 else (lambda a: a)
        return [None if a is None else ids.setdefault(norm(a), len(ids)) for a in answers]


def test_cached_labels_are_keyed_by_checker_version(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    answers = ['"berl"', "berl", None]
    old = CachedAnswerClasses(QuoteBlindChecker(1), path)
    assert old.classes(answers) == [0, 1, None]
    old.save()
    new = CachedAnswerClasses(QuoteBlindChecker(2), path)
    assert new.classes(answers) == [0, 0, None]  # recomputed, not the old verdict read back
    assert (new.hits, new.misses) == (0, 1)
    again = CachedAnswerClasses(QuoteBlindChecker(1), path)
    assert again.classes(answers) == [0, 1, None] and again.hits == 1
    assert AnswerChecker.SEMANTICS_VERSION == 2
