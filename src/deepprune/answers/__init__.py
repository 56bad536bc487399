"""Final answers: extraction from model outputs and answer equivalence, the one implementation behind pair labels,
votes and accuracy.

- :mod:`~deepprune.answers.extract`: :func:`extract_answer` (thought markers, boxes, answer cues, summary
  sentences) and :func:`looks_finished` (whether a text was cut at the length limit); pure Python, no sympy.
- :mod:`~deepprune.answers.checker`: :class:`AnswerChecker` (math-verify, symmetric or directional, with the
  pre-processing that fixes its known misreadings) and the protocols consumers type with (:class:`AnswerClasses`,
  :class:`AnswerEquivalence`, :class:`AnswerChecking`).
- :mod:`~deepprune.answers.markers`: thought and solution markers (:class:`Markers`, :func:`split_thought`).
- :mod:`~deepprune.answers.normal`: answer normal forms and the comparisons that need no sympy.
- :mod:`~deepprune.answers.pool` and :mod:`~deepprune.answers.worker`: the math-verify subprocess and its pool.

``import deepprune.answers`` stays light: sympy and math-verify load only in the worker process.
"""

from __future__ import annotations

from deepprune.answers.checker import (
    AnswerChecker,
    AnswerChecking,
    AnswerClasses,
    AnswerEquivalence,
    CompareOptions,
    answers_equivalent,
    get_checker,
)
from deepprune.answers.extract import DEFAULT_MARKERS, Markers, extract_answer, looks_finished, split_thought

__all__ = [
    "DEFAULT_MARKERS",
    "AnswerChecker",
    "AnswerChecking",
    "AnswerClasses",
    "AnswerEquivalence",
    "CompareOptions",
    "Markers",
    "answers_equivalent",
    "extract_answer",
    "get_checker",
    "looks_finished",
    "split_thought",
]
