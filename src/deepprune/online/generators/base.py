"""The generator contract shared by the replay, hf and vllm backends of the online runner.

A generator produces N parallel reasoning traces for one problem. The online policies only see
:class:`TraceState` objects and drive them through :class:`Generator`: ``start`` makes fresh states,
``advance`` generates further (until a trace finishes or a stop predicate such as
:meth:`deepprune.truncation.PrefixRule.reached` fires), ``release`` aborts pruned traces so they stop
consuming compute.

Token counting contract (replay and live must agree): ``TraceState.num_tokens`` is the number of tokens
GENERATED so far, counted with the generating model's tokenizer (prompt tokens are never counted).

Several problems in flight (the async core). :class:`AsyncGenerator` is the same contract as coroutines
(``async start/advance/release``, sync ``close``); the policies are written once against it
(``policy.arun(problem, agen, seed)``) and their sync ``run`` drives ``arun`` with :func:`run_sync`.
:func:`as_async` turns any generator into one:

- a backend with a native async API (``astart/aadvance/arelease`` methods, the vLLM backend) gets a view that
  calls them, so traces of several problems share one engine;
- any other (replay, simulated, hf) is wrapped in :class:`SyncAsAsync`: its methods run on the calling event
  loop's thread, one at a time, and each call then yields once to the loop. No threads, and asyncio runs ready
  tasks in FIFO order, so the interleaving of problems is fixed by the order they were started: under replay,
  problems run concurrently give exactly the outcomes of the sequential run (same seeds, same traces).

Every backend keeps its per-trace bookkeeping on the state itself (``TraceState.handle``, private to the
backend that made the state), never in per-generator "current problem" fields, so states of several
``start`` calls can be advanced and released in any interleaving. Judge snapshots (``dataclasses.replace`` of a
state) share the handle, which is how replay's ``peek_answer`` still knows a snapshot's final answer.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from deepprune.sources import Problem

__all__ = [
    "TraceState", "Generator", "AsyncGenerator", "SyncAsAsync", "as_async", "run_sync", "TraceProgress",
    "derive_seed", "problem_seed",
]  # fmt: skip

T = TypeVar("T")


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
    # the backend's own bookkeeping for this trace (replayed trace, token ids, request ids, released flag)
    handle: Any = field(default=None, repr=False, compare=False)


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


@runtime_checkable
class AsyncGenerator(Protocol):
    """:class:`Generator` as coroutines, so several problems' traces can be in flight at once (``as_async``)."""

    async def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]: ...

    async def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None: ...

    async def release(self, states: list[TraceState]) -> None: ...

    def close(self) -> None: ...


class SyncAsAsync:
    """A synchronous :class:`Generator` behind the :class:`AsyncGenerator` API, deterministically.

    Each call runs the sync method on the event loop's thread, then yields once (``asyncio.sleep(0)``), so other
    problems' coroutines take their turn in FIFO order. Every other attribute (``peek_answer``, ``problems``,
    ``stats``...) is the wrapped generator's.
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["generator"], name)

    async def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        states = self.generator.start(problem, n, seed)
        await asyncio.sleep(0)
        return states

    async def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        self.generator.advance(states, until)
        await asyncio.sleep(0)

    async def release(self, states: list[TraceState]) -> None:
        self.generator.release(states)
        await asyncio.sleep(0)

    def close(self) -> None:
        self.generator.close()


class _NativeAsync:
    """The AsyncGenerator view of a backend with ``astart/aadvance/arelease`` (the vLLM backend)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["generator"], name)

    async def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        return await self.generator.astart(problem, n, seed)

    async def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        await self.generator.aadvance(states, until)

    async def release(self, states: list[TraceState]) -> None:
        await self.generator.arelease(states)

    def close(self) -> None:
        self.generator.close()


def as_async(generator: Any) -> AsyncGenerator:
    """``generator`` as an :class:`AsyncGenerator`: itself if it already is one, its native async API if its class
    has one (``aadvance``), else :class:`SyncAsAsync` (see the module docstring). Looked up on the class, so a
    wrapper that forwards attributes (:class:`TraceProgress`) keeps its own sync methods in the path."""
    if isinstance(generator, (SyncAsAsync, _NativeAsync)) or inspect.iscoroutinefunction(
        getattr(type(generator), "advance", None)
    ):
        return generator
    if callable(getattr(type(generator), "aadvance", None)):
        return _NativeAsync(generator)
    return SyncAsAsync(generator)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code (the policies' ``run``): ``asyncio.run`` on this
    thread, or, when this thread already runs an event loop (a notebook, an async caller of the sync API), on a
    fresh thread of its own, so the sync API works everywhere."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="deepprune-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


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
