"""Property-based tests of answer extraction (hypothesis): time linear in the text, invariants of the markers."""

from __future__ import annotations

import tempfile
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

from deepprune.answers import extract_answer, looks_finished  # noqa: E402

# hypothesis keeps a cache in ./.hypothesis by default; tests never write into the repository
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))

# Pieces that drive the extractor's patterns (boxes, braces, cues, math spans, markers, whitespace runs).
FRAGMENTS = [
    "\\boxed{",
    "\\boxed ",
    "\\fbox{",
    "{",
    "}",
    "\\{",
    "\\",
    "$",
    "$$",
    "\\(",
    "\\)",
    "\\[",
    "Answer:",
    "**Answer:**",
    "The final answer is",
    "the answer is",
    "the correct option is",
    "I hope it is correct",
    " is ",
    " which ",
    "(i.e. ",
    "(B)",
    "Yes",
    ",",
    ".",
    ". ",
    ";",
    "=",
    "*",
    "'",
    '"',
    " ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    "<think>",
    "</think>",
    "<|begin_of_thought|>",
    "<|end_of_thought|>",
    "<|begin_of_solution|>",
    "<|end_of_solution|>",
    "x",
    "3",
    "1,000",
    "\\frac{1}{2}",
]

chunks = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), min_size=1, max_size=40).map("".join)

# Generous per-character budget: the quadratic extractor took 122 s on 137 KB (about 1 ms per character there);
# a linear one takes a few microseconds per character.
PER_CHAR_S = 20e-6
BASE_S = 0.25


def _cpu_seconds(fn, text: str) -> float:
    start = time.process_time()
    fn(text)
    return time.process_time() - start


@settings(max_examples=40, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=chunks, target=st.sampled_from([2_000, 30_000, 60_000]))
def test_extraction_time_is_bounded_by_length(chunk: str, target: int) -> None:
    text = chunk * max(1, target // max(1, len(chunk)))
    bound = BASE_S + PER_CHAR_S * len(text)
    assert _cpu_seconds(extract_answer, text) < bound, (len(text), chunk[:200])
    assert _cpu_seconds(looks_finished, text) < bound, (len(text), chunk[:200])


@settings(max_examples=200, database=None, deadline=None)
@given(text=st.text(max_size=300) | chunks)
def test_extraction_returns_a_clean_answer_or_none(text: str) -> None:
    ans = extract_answer(text)
    assert ans is None or (isinstance(ans, str) and ans == ans.strip() and ans)
    assert extract_answer(text) == ans  # deterministic
    assert looks_finished(text) in (True, False, None)


@settings(max_examples=200, database=None, deadline=None)
@given(text=chunks)
def test_an_open_thought_has_no_answer(text: str) -> None:
    # whatever the thinking says, a text that ends inside a thought has not answered yet
    cleaned = text.replace("</think>", "").replace("<|end_of_thought|>", "")
    for opener in ("<think>", "<|begin_of_thought|>"):
        assert extract_answer("Some intro. " + opener + cleaned) is None
        assert looks_finished(opener + cleaned) is False


@settings(max_examples=200, database=None, deadline=None)
@given(text=chunks, finished=st.sampled_from([None, True, False]))
def test_known_unfinished_only_keeps_boxes(text: str, finished: bool | None) -> None:
    # finished=False can only remove an answer (no fallbacks), and never invents one
    ans = extract_answer(text, finished=finished)
    if finished is False and ans is not None:
        assert ans == extract_answer(text, finished=None)
