"""The generator contract shared by the replay, hf and vllm backends of the online runner.

A generator produces N parallel reasoning traces for one problem. The online policies only see
:class:`TraceState` objects and drive them through :class:`Generator`: ``start`` makes fresh states,
``advance`` generates further (until a trace finishes or a stop predicate such as :class:`PrefixRule`
fires), ``release`` aborts pruned traces so they stop consuming compute.

Token counting contract (replay and live must agree): ``TraceState.num_tokens`` is the number of tokens
GENERATED so far, counted with the generating model's tokenizer (prompt tokens are never counted).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from deepprune.sources import Problem

__all__ = ["TraceState", "Generator", "PrefixRule", "TraceProgress", "derive_seed", "count_reasoning_words"]

# Used only when deepprune.truncation is unavailable; the truncation module owns the canonical list.
_FALLBACK_REASONING_WORDS: tuple[str, ...] = (
    "wait",
    "thus",
    "since",
    "so",
    "but",
    "therefore",
    "hmm",
    "alternatively",
)


def derive_seed(seed: int, i: int) -> int:
    """Per-trace seed for trace ``i`` of a run seeded with ``seed`` (shared by every backend)."""
    return seed * 100003 + i


@dataclass
class TraceState:
    """One trace being generated. Backends mutate it in place."""

    index: int
    seed: int
    text: str = ""
    num_tokens: int = 0  # tokens generated so far, generating model's tokenizer
    finished: bool = False
    token_confidences: list[float] = field(default_factory=list)  # DeepConf: -mean of top-k logprobs per token
    answer: str | None = None  # set when finished


@runtime_checkable
class Generator(Protocol):
    """What every generation backend implements."""

    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        """Return ``n`` fresh states (nothing generated); trace ``i`` uses ``derive_seed(seed, i)``."""
        ...

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        """Generate each state further until it finishes or ``until(state)`` is True (checked as tokens arrive)."""
        ...

    def release(self, states: list[TraceState]) -> None:
        """Abort these traces: they stop consuming compute and are never advanced again."""
        ...

    def close(self) -> None:
        """Free the backend's resources."""
        ...


class TraceProgress:
    """Any generator, with a per-problem progress bar that counts its traces as they finish or are released.

    ``start`` opens a bar of ``n`` traces for the problem; after every ``advance`` and ``release`` the bar shows
    how many traces finished, how many were pruned, and the tokens generated so far. The stop predicate is passed
    through untouched (backends keep their fast paths), so the bar moves once per call, not per token. Every
    other attribute (``peek_answer``, ``problems``, ``model_name``, ``stats``...) is the wrapped generator's.
    Silent in CI and when stderr is not a terminal (`deepprune.runtime.progress_bar`).
    """

    def __init__(self, generator: Generator, desc: str = "traces") -> None:
        self.generator = generator
        self.desc = desc
        self._bar: Any = None
        self._states: list[TraceState] = []
        self._released: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["generator"], name)

    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        from deepprune.runtime import progress_bar

        states = self.generator.start(problem, n, seed)
        self.close_bar()
        self._bar = progress_bar(f"{self.desc} {problem.problem_id}", total=len(states), unit="trace", leave=False)
        self._states, self._released = states, set()
        return states

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        self.generator.advance(states, until)
        self._refresh()

    def release(self, states: list[TraceState]) -> None:
        self.generator.release(states)
        self._released.update(s.index for s in states if not s.finished)
        self._refresh()

    def close(self) -> None:
        self.close_bar()
        self.generator.close()

    def counts(self) -> dict[str, int]:
        """Traces of the current problem that finished or were pruned, and the tokens generated so far."""
        finished = sum(1 for s in self._states if s.finished)
        pruned = sum(1 for s in self._states if s.index in self._released and not s.finished)
        return {"finished": finished, "pruned": pruned, "tokens": sum(s.num_tokens for s in self._states)}

    def _refresh(self) -> None:
        if self._bar is None:
            return
        counts = self.counts()
        self._bar.update(counts["finished"] + counts["pruned"] - self._bar.n)
        self._bar.set_postfix(counts, refresh=False)

    def close_bar(self) -> None:
        """Close the current problem's bar (the generator stays open)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _default_words() -> tuple[str, ...]:
    try:
        from deepprune.truncation import DEFAULT_REASONING_WORDS
    except ImportError:  # truncation module not present in this checkout
        return _FALLBACK_REASONING_WORDS
    return tuple(DEFAULT_REASONING_WORDS)


def _word_pattern(words: Sequence[str]) -> re.Pattern[str]:
    # A word counts once a non-word character follows it: a stream that ends in "wait" may still become
    # "waiting", and this makes the count on a growing text monotone (so replay can jump straight to the cut
    # that live token-by-token generation would stop at).
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})(?=\W)", re.IGNORECASE)


def count_reasoning_words(text: str, words: Sequence[str]) -> int:
    """Whole-word, case-insensitive occurrences of any of ``words`` in ``text`` (each followed by a non-word char)."""
    return len(_word_pattern(words).findall(text))


@dataclass
class PrefixRule:
    """When a trace's prefix is complete: after ``k`` generated tokens, or once ``k`` reasoning words appeared.

    A trace that finishes before the rule fires uses its whole text as the prefix (paper section 4.2).
    ``words=None`` means ``deepprune.truncation.DEFAULT_REASONING_WORDS``.
    """

    kind: Literal["tokens", "words"] = "tokens"
    k: int = 500
    words: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("tokens", "words"):
            raise ValueError(f"PrefixRule.kind must be 'tokens' or 'words', got {self.kind!r}")
        if self.k < 1:
            raise ValueError(f"PrefixRule.k must be >= 1, got {self.k}")
        if self.words is not None:
            self.words = tuple(self.words)
        self._pattern: re.Pattern[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            self._pattern = _word_pattern(self.words if self.words is not None else _default_words())
        return self._pattern

    def reached(self, state: TraceState) -> bool:
        """True once the prefix is complete (finished traces always count as complete)."""
        if state.finished:
            return True
        if self.kind == "tokens":
            return state.num_tokens >= self.k
        return len(self.pattern.findall(state.text)) >= self.k

    def cut_words(self, text: str) -> str | None:
        """The text up to and including the k-th reasoning word, or None when it has fewer than k."""
        end = self._kth_word_end(text)
        return None if end is None else text[:end]

    def _kth_word_end(self, text: str) -> int | None:
        for i, m in enumerate(self.pattern.finditer(text), start=1):
            if i == self.k:
                return m.end()
        return None

    def first_index(
        self, text: str, token_ends: Sequence[int], confidences: Sequence[float] | None = None, start: int = 0
    ) -> int:
        """Fewest tokens (at least ``start``) of a complete trace at which :meth:`reached` holds.

        ``token_ends[i]`` is the character end of token ``i``. Returns ``len(token_ends)`` when the rule never
        fires before the end. Replay uses this to jump to the cut that token-by-token checking would stop at.
        """
        total = len(token_ends)
        if self.kind == "tokens":
            return max(start, min(self.k, total))
        end = self._kth_word_end(text)
        if end is None:
            return total
        # the k-th word counts once one more character (the non-word one after it) has been generated
        for n, char_end in enumerate(token_ends, start=1):
            if char_end > end:
                return max(start, n)
        return total
