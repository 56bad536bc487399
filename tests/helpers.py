"""Test doubles shared by the test modules (import with ``from helpers import ExactChecker``).

pytest puts this folder on ``sys.path`` for the test modules (rootdir-relative imports, no ``__init__.py``).
"""

from __future__ import annotations

from collections.abc import Sequence


class ExactChecker:
    """Answer equivalence by string equality (``strip_spaces``: after removing spaces), for tests whose labels and
    votes must not depend on math-verify. ``classes`` compares each answer with the first member of every class so
    far, in order (as `deepprune.answers.AnswerChecker.classes` does), and counts those comparisons in
    ``comparisons``; ``None`` is never equivalent to anything."""

    def __init__(self, strip_spaces: bool = False) -> None:
        self.strip_spaces = strip_spaces
        self.comparisons = 0

    def _key(self, answer: str) -> str:
        return answer.replace(" ", "") if self.strip_spaces else answer

    def equivalent(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and self._key(a) == self._key(b)

    def classes(self, answers: Sequence[str | None]) -> list[int | None]:
        reps: list[str] = []
        out: list[int | None] = []
        for a in answers:
            if a is None:
                out.append(None)
                continue
            for cid, rep in enumerate(reps):
                self.comparisons += 1
                if self._key(rep) == self._key(a):
                    out.append(cid)
                    break
            else:
                reps.append(a)
                out.append(len(reps) - 1)
        return out


class SpaceBlindChecker(ExactChecker):
    """:class:`ExactChecker` that ignores spaces (``"2 "`` and ``" 2"`` are ``"2"``)."""

    def __init__(self) -> None:
        super().__init__(strip_spaces=True)
