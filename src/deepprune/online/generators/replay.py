"""Replay generator: pre-generated traces revealed token by token, the fair way to compare policies on CPU.

Any trace source works (``conf/source/*.yaml``: champ, a JSONL file from ``deepprune.collect``, ...). For a
problem, :meth:`ReplayGenerator.start` takes its traces (optionally of some ``models`` only): all of them when
``n`` equals the number available, a seeded sample when ``n`` is smaller, and an error when ``n`` is larger
(unless ``allow_fewer``, which returns what there is). With ``shuffle`` (default) the chosen traces arrive in a
seeded random order, which stands in for the random order in which parallel prefixes complete; state ``i`` is
the ``i``-th to arrive. Same seed, same traces, same order: a policy and its cons@N reference see identical
samples.

Token counting (``token_counts``), so replay counts what a live run of the generating model would:

- ``"auto"`` (default): the trace's ``num_tokens`` when present (it was counted by the generating model when
  the trace was collected, exactly what live generation reports), else ``len(token_confidences)`` when
  present, else the configured tokenizer (default ``deepprune.assets.qwen_tokenizer()``).
- ``"tokenizer"``: always the tokenizer.
When the count does not come from the tokenizer, token ``i`` ends at character ``round((i+1) * len(text) / T)``
(text revealed in proportion), since the generating model's token boundaries are unknown.

A trace's last token makes it ``finished``; its ``answer`` is the trace's ``answer`` field, or
``deepprune.answers.extract_answer(text)`` when that is null (``extract_missing``). Token confidences come from
the trace's ``token_confidences`` when present (DeepConf policies need them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepprune.online.generators.base import TraceState, derive_seed
from deepprune.runtime import get_logger

if TYPE_CHECKING:
    from deepprune.sources import Problem
    from deepprune.traces import Trace

log = get_logger(__name__)

__all__ = ["ReplayGenerator", "WhitespaceTokenizer"]


class WhitespaceTokenizer:
    """A tokenizer for tests and hand-made examples: every run of non-space characters (with the spaces before it)
    is one token."""

    def token_ends(self, text: str) -> list[int]:
        import re

        return [m.end() for m in re.finditer(r"\s*\S+", text)]


class _HFTokenEnds:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def token_ends(self, text: str) -> list[int]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [e for _, e in enc["offset_mapping"]]
        # byte-level BPE may split one character over tokens; keep ends non-decreasing and the last at len(text)
        ends = list(np.maximum.accumulate(ends)) if ends else []
        if ends:
            ends[-1] = len(text)
        return [int(e) for e in ends]


@dataclass
class _Replayed:
    trace: Trace
    ends: list[int]
    confidences: list[float] | None
    answer: str | None


@dataclass
class _Handle:
    """``TraceState.handle`` of a replayed trace: what it replays, and whether it was released."""

    owner: ReplayGenerator
    replayed: _Replayed
    released: bool = False


class ReplayGenerator:
    """Replays ``traces``; see the module docstring."""

    def __init__(
        self,
        traces: Sequence[Trace],
        models: Sequence[str] | None = None,
        allow_fewer: bool = False,
        shuffle: bool = True,
        token_counts: Literal["auto", "tokenizer"] = "auto",
        tokenizer: Any = None,
        extract_missing: bool = True,
    ) -> None:
        if token_counts not in ("auto", "tokenizer"):
            raise ValueError(f"token_counts must be 'auto' or 'tokenizer', got {token_counts!r}")
        traces = list(traces)
        if models is not None:
            wanted = set(models)
            present = {t.model for t in traces}
            missing = sorted(wanted - present)
            if missing:
                raise ValueError(f"replay: no traces of model(s) {missing}; present: {sorted(map(str, present))}")
            traces = [t for t in traces if t.model in wanted]
        if not traces:
            raise ValueError("replay: the trace source returned no traces")
        self.traces = traces
        self.allow_fewer = allow_fewer
        self.shuffle = shuffle
        self.token_counts = token_counts
        self.extract_missing = extract_missing
        self._tokenizer = tokenizer
        self._by_problem: dict[str, list[Trace]] = {}
        for t in traces:
            self._by_problem.setdefault(t.problem_id, []).append(t)
        self._cache: dict[int, _Replayed] = {}

    # -- problems -------------------------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """The problems of the replayed traces, first-seen order (question and gold from the traces)."""
        from deepprune.sources import problems_from_traces

        return problems_from_traces(self.traces)

    def available(self, problem_id: str) -> int:
        return len(self._by_problem.get(problem_id, []))

    # -- Generator protocol ---------------------------------------------------------------------------------
    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        pool = self._by_problem.get(problem.problem_id)
        if not pool:
            raise KeyError(f"replay: no traces for problem {problem.problem_id!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng([seed, 0x5E1EC7])
        if n > len(pool):
            if not self.allow_fewer:
                raise ValueError(
                    f"replay: problem {problem.problem_id!r} has {len(pool)} traces, n={n} asked "
                    f"(lower n, or set generator.allow_fewer=true to use what there is)"
                )
            n = len(pool)
        chosen = list(range(len(pool))) if n == len(pool) else sorted(rng.choice(len(pool), n, replace=False))
        if self.shuffle:
            chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        return [
            TraceState(index=i, seed=derive_seed(seed, i), handle=_Handle(self, self._replayed(pool[j])))
            for i, j in enumerate(chosen)
        ]

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        for state in states:
            if state.finished or self._handle(state).released:
                continue
            rt = self._get(state)
            total = len(rt.ends)
            if until is None:
                n = total
            elif until(state):
                continue
            else:
                rule = getattr(until, "__self__", until)  # a bound PrefixRule.reached -> the rule (its fast path)
                fast = getattr(rule, "first_index", None)
                if callable(fast):
                    n = int(fast(rt.trace.text, rt.ends, rt.confidences, start=state.num_tokens))
                else:
                    n = state.num_tokens
                    while n < total:
                        n += 1
                        self._reveal(state, rt, n)
                        if until(state):
                            break
            self._reveal(state, rt, min(max(n, state.num_tokens), total))

    def release(self, states: list[TraceState]) -> None:
        for state in states:
            self._handle(state).released = True

    def close(self) -> None:
        return None  # nothing held: each state carries its replayed trace

    # -- replay-only ----------------------------------------------------------------------------------------
    def peek_answer(self, state: TraceState) -> str | None:
        """The final answer this trace WILL reach (replay knows the future; used by the oracle judge and pass@k)."""
        return self._get(state).answer

    def full_tokens(self, state: TraceState) -> int:
        """Tokens of the complete trace."""
        return len(self._get(state).ends)

    # -- internals ------------------------------------------------------------------------------------------
    def _handle(self, state: TraceState) -> _Handle:
        handle = state.handle
        if not isinstance(handle, _Handle) or handle.owner is not self:
            raise KeyError(f"replay: state {state.index} (seed {state.seed}) was not started by this generator")
        return handle

    def _get(self, state: TraceState) -> _Replayed:
        return self._handle(state).replayed

    @staticmethod
    def _reveal(state: TraceState, rt: _Replayed, n: int) -> None:
        state.num_tokens = n
        state.text = rt.trace.text[: rt.ends[n - 1]] if n > 0 else ""
        state.token_confidences = list(rt.confidences[:n]) if rt.confidences else []
        if n >= len(rt.ends):
            state.finished = True
            state.answer = rt.answer

    def _token_ends(self, text: str) -> list[int]:
        if self._tokenizer is None:
            from deepprune.assets import qwen_tokenizer

            self._tokenizer = _HFTokenEnds(qwen_tokenizer())
        elif not hasattr(self._tokenizer, "token_ends"):
            self._tokenizer = _HFTokenEnds(self._tokenizer)
        return self._tokenizer.token_ends(text)

    def _replayed(self, trace: Trace) -> _Replayed:
        key = id(trace)
        if key in self._cache:
            return self._cache[key]
        confs = list(trace.token_confidences) if trace.token_confidences else None
        total: int | None = None
        if self.token_counts == "auto":
            total = trace.num_tokens if trace.num_tokens is not None else (len(confs) if confs else None)
        if total is None:
            ends = self._token_ends(trace.text)
        else:
            length = len(trace.text)
            ends = [round((i + 1) * length / total) for i in range(total)]
        if confs is not None and len(confs) != len(ends):
            raise ValueError(
                f"replay: trace {trace.problem_id}/{trace.sample_id} has {len(confs)} token_confidences "
                f"but {len(ends)} tokens"
            )
        answer = trace.answer
        if answer is None and self.extract_missing:
            from deepprune.answers import extract_answer

            answer = extract_answer(trace.text, finished=trace.finished)
        rt = _Replayed(trace, ends, confs, answer)
        self._cache[key] = rt
        return rt
