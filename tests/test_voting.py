"""Majority and weighted votes: equivalence classes, the tie rule, None answers."""

from __future__ import annotations

import pytest
from helpers import SpaceBlindChecker

from deepprune.online.voting import majority_vote, weighted_vote

C = SpaceBlindChecker()


def test_majority_picks_the_largest_class_and_returns_its_first_member_text():
    v = majority_vote(["1", "2", "2 ", "3", " 2"], C)
    assert v.answer == "2"
    assert v.winner == 1
    assert v.scores == {0: 1.0, 1: 3.0, 2: 1.0}


def test_tie_goes_to_the_class_whose_first_member_came_first():
    assert majority_vote(["b", "a", "a", "b"], C).answer == "b"
    assert majority_vote(["a", "b", "b", "a"], C).answer == "a"
    assert majority_vote(["x", "y", "z"], C).answer == "x"


def test_none_never_wins_unless_all_are_none():
    assert majority_vote([None, None, None, "7"], C).answer == "7"
    v = majority_vote([None, None], C)
    assert v.answer is None and v.winner is None
    assert majority_vote([], C).answer is None


def test_weighted_vote_sums_weights_per_class():
    answers = ["a", "b", "b", None]
    assert majority_vote(answers, C).answer == "b"
    assert weighted_vote(answers, [5.0, 2.0, 2.0, 100.0], C).answer == "a"  # 5 > 4; None's weight is ignored
    assert weighted_vote(answers, [4.0, 2.0, 2.0, 0.0], C).answer == "a"  # 4 == 4: tie -> first seen


def test_weights_must_match_answers():
    with pytest.raises(ValueError):
        weighted_vote(["a"], [1.0, 2.0], C)


def test_default_checker_uses_answer_equivalence():
    # deepprune.answers groups mathematically equal answers into one class
    v = majority_vote(["1/2", "0.7", "\\frac{1}{2}", "0.7", "0.5"])
    assert v.answer == "1/2"
    assert v.scores[v.class_ids[0]] == 3.0
