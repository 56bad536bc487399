"""Majority and confidence-weighted votes over final answers, using deepprune.answers equivalence classes.

Answers are grouped into equivalence classes by :meth:`deepprune.answers.AnswerChecker.classes` (one
equivalence function for labels, votes and accuracy). A class scores its number of members (majority vote)
or the sum of its members' weights (weighted vote, DeepConf's confidence-weighted vote with the lowest
group confidence as weight).

Tie rule: among classes with the same score, the class whose first member comes earliest in the input wins.
Callers pass answers in arrival order (trace index order), so the earliest-arrived answer breaks ties. The
winning answer is the text of that first member. ``None`` answers (nothing extracted) never vote; the result
is ``None`` only when every answer is ``None`` (or there are none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from deepprune.answers import AnswerClasses

__all__ = ["VoteResult", "majority_vote", "weighted_vote", "AnswerClasses"]


@dataclass
class VoteResult:
    answer: str | None
    winner: int | None = None  # position (in the input) of the winning class's first member
    scores: dict[int, float] = field(default_factory=dict)  # class id -> votes (or summed weight)
    class_ids: list[int | None] = field(default_factory=list)


def _checker(checker: AnswerClasses | None) -> AnswerClasses:
    if checker is not None:
        return checker
    from deepprune.answers import get_checker

    return get_checker()


def weighted_vote(
    answers: Sequence[str | None], weights: Sequence[float], checker: AnswerClasses | None = None
) -> VoteResult:
    """The answer class with the largest total weight; ties go to the class seen first."""
    if len(answers) != len(weights):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights")
    class_ids = list(_checker(checker).classes(list(answers))) if answers else []
    scores: dict[int, float] = {}
    first: dict[int, int] = {}
    for pos, (cid, w) in enumerate(zip(class_ids, weights)):
        if cid is None or answers[pos] is None:
            continue
        scores[cid] = scores.get(cid, 0.0) + float(w)
        first.setdefault(cid, pos)
    if not scores:
        return VoteResult(None, None, {}, class_ids)
    best = max(scores, key=lambda c: (scores[c], -first[c]))
    return VoteResult(answers[first[best]], first[best], scores, class_ids)


def majority_vote(answers: Sequence[str | None], checker: AnswerClasses | None = None) -> VoteResult:
    """The most frequent answer class; ties go to the class seen first."""
    return weighted_vote(answers, [1.0] * len(answers), checker)
