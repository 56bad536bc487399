"""The generator contract shared by the replay, hf and vllm backends of the online runner.

A generator produces N parallel reasoning traces for one problem. The online policies only see
:class:`TraceState` objects and drive them through :class:`Generator`: ``start`` makes fresh states,
``advance`` generates further (until a trace finishes or a stop predicate such as
:meth:`deepprune.truncation.PrefixRule.reached` fires), ``release`` aborts pruned traces so they stop
consuming compute.

Token counting contract (replay and live must agree): ``TraceState.num_tokens`` is the number of tokens
GENERATED so far, counted with the generating model's tokenizer (prompt tokens are never counted).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from deepprune.sources import Problem

__all__ = ["TraceState", "Generator", "TraceProgress", "derive_seed", "problem_seed"]


def problem_seed(seed: int, problem_id: str) -> int:
    """The seed of one problem in a run seeded with ``seed``: stable across runs, independent of the problem's
    position in the set (so skipping, resuming or reordering problems never changes a problem's traces). The one
    formula for online runs and trace collection."""
    return seed * 1_000_003 + zlib.crc32(problem_id.encode("utf-8"))


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
