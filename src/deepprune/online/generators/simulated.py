"""Simulated generator: N traces per problem drawn from an answer distribution and a length model, no model run.

The online policies need three things from a trace: its final answer, its length, and (through a judge) how
similar its prefix is to others'. This generator draws the first two per trace, so paper-scale questions
(N = 512: how good must the judge be, which tau / K2 fit a model's answer distribution) run in minutes on a
CPU; pair with ``judge=simulated`` (:mod:`deepprune.online.simulated_judge`) or ``judge=oracle``.

Answers (``answers``):

- ``"empirical"`` (default): each trace's answer is drawn with replacement from the problem's recorded answers
  (:class:`~deepprune.sources.answer_lists.AnswerList`, e.g. thought-branches' ~10 runs of R1-Distill-Qwen-14B
  per MATH problem), so N = 512 traces follow the real answer frequencies. ``replace=False`` draws without
  replacement instead (a permutation when N equals the pool; an error when N is larger), as replay does.
- ``"parametric"``: the reference answer with probability ``p_correct`` (``null``: the problem's empirical
  accuracy), else one of ``wrong_answers`` distinct wrong answers (``"1000000001"``, ...), with frequencies
  drawn once per problem from a symmetric Dirichlet(``wrong_concentration``) (small: one dominant wrong answer,
  large: evenly split). Without answer lists it makes ``num_problems`` synthetic problems (reference ``"0"``).

Lengths in generated tokens (``length_model``):

- ``"lognormal"`` (default): per problem, the lognormal with the source's mean and standard deviation
  (``mean_tokens`` / ``std_tokens`` where it has none), rounded, clipped to [``min_tokens``, ``max_tokens``]
  (reasoning-trace lengths are right-skewed: thought-branches' medians lie below their means);
- ``"empirical"``: the drawn answer's own recorded length (answer and length drawn together, which keeps a
  source's answer-length correlation; needs per-answer ``lengths``, e.g. :func:`answer_lists_from_traces`);
- ``"constant"``: every trace has the problem's mean length (hand-checkable token counts).

Token counting is the replay/live contract (``deepprune.online.generators.base``): ``num_tokens`` counts
generated tokens; ``advance(until=rule)`` stops a trace at the first token count where the rule holds (a
``first_index`` fast path, else token-by-token checks), so a 500-token prefix of a 300-token trace is the
whole trace (finished in the prefix phase) and continuations count the rest. Simulated traces have no text
and no token confidences: rules that read text (reasoning-word prefixes) raise, DeepConf's policies stop
with their "needs token confidences" error, and text judges (embedding, exported) would only see empty
strings. ``peek_answer`` and ``answer_class`` (the drawn answer's equivalence class within its problem, from
``deepprune.answers`` once per distinct answer) let the oracle and the simulated judge know the final answers.

Seeds: ``start(problem, n, seed)`` draws from ``numpy.random.default_rng([seed, salt])``: the same seed gives
the same traces in the same arrival order, so a policy and its cons@N reference see identical samples.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepprune.online.generators.base import TraceState, derive_seed
from deepprune.sources.answer_lists import AnswerList

if TYPE_CHECKING:
    from deepprune.answers import AnswerClasses
    from deepprune.sources import Problem
    from deepprune.traces import Trace

__all__ = ["SimulatedGenerator", "answer_lists_from_traces", "lognormal_params"]

_SALT = 0x51A7ED


@dataclass
class _Drawn:
    """``TraceState.handle`` of a simulated trace: its drawn answer, answer class and length; released or not."""

    owner: SimulatedGenerator
    answer: str | None
    answer_class: int
    length: int
    released: bool = False


WRONG_BASE = 1_000_000_001  # parametric wrong answers are "1000000001", "1000000002", ...


def lognormal_params(mean: float, std: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and standard deviation (moment matching)."""
    if mean <= 0:
        raise ValueError(f"mean length must be > 0, got {mean}")
    sigma2 = float(np.log1p((std / mean) ** 2))
    return float(np.log(mean) - sigma2 / 2), float(np.sqrt(sigma2))


@dataclass
class _Pool:
    """What the simulator draws from for one problem."""

    answers: list[str | None]  # empirical: the recorded answers; parametric: [correct, wrong_1, ...]
    classes: np.ndarray  # equivalence class of each entry of ``answers`` (-1: no answer)
    probs: np.ndarray | None  # parametric: probability of each entry; empirical: None (uniform over entries)
    lengths: np.ndarray | None
    mean: float
    std: float


class SimulatedGenerator:
    """Draws simulated traces; see the module docstring."""

    def __init__(
        self,
        answer_lists: Sequence[AnswerList] | None = None,
        answers: Literal["empirical", "parametric"] = "empirical",
        replace: bool = True,
        p_correct: float | None = None,
        wrong_answers: int = 4,
        wrong_concentration: float = 1.0,
        num_problems: int = 100,
        length_model: Literal["lognormal", "empirical", "constant"] = "lognormal",
        mean_tokens: float = 4000.0,
        std_tokens: float = 1000.0,
        min_tokens: int = 1,
        max_tokens: int | None = None,
        checker: AnswerClasses | None = None,
    ) -> None:
        if answers not in ("empirical", "parametric"):
            raise ValueError(f"generator.answers must be 'empirical' or 'parametric', got {answers!r}")
        if length_model not in ("lognormal", "empirical", "constant"):
            raise ValueError(
                f"generator.length_model must be 'lognormal', 'empirical' or 'constant', got {length_model!r}"
            )
        if p_correct is not None and not 0.0 <= p_correct <= 1.0:
            raise ValueError(f"generator.p_correct must be in [0, 1] or null, got {p_correct}")
        if wrong_answers < 1 or wrong_concentration <= 0:
            raise ValueError(
                f"generator.wrong_answers must be >= 1 and generator.wrong_concentration > 0, "
                f"got {wrong_answers} and {wrong_concentration}"
            )
        if mean_tokens <= 0 or std_tokens < 0 or min_tokens < 1:
            raise ValueError(
                f"generator.mean_tokens > 0, std_tokens >= 0, min_tokens >= 1 needed; "
                f"got {mean_tokens}, {std_tokens}, {min_tokens}"
            )
        if max_tokens is not None and max_tokens < min_tokens:
            raise ValueError(f"generator.max_tokens={max_tokens} is below generator.min_tokens={min_tokens}")
        if answer_lists is None:
            if answers == "empirical":
                raise ValueError("generator.answers=empirical needs answer lists (generator.answer_lists)")
            if p_correct is None:
                raise ValueError("generator.answers=parametric without answer lists needs generator.p_correct")
            if num_problems < 1:
                raise ValueError(f"generator.num_problems must be >= 1, got {num_problems}")
            answer_lists = [
                AnswerList(f"sim/{i:04d}", "", "0", ["0"], dataset="simulated") for i in range(num_problems)
            ]
        self.answer_lists = list(answer_lists)
        if not self.answer_lists:
            raise ValueError("generator.answer_lists is empty")
        if length_model == "empirical":
            if answers == "parametric":
                raise ValueError("length_model=empirical draws each answer's own length: use answers=empirical")
            lacking = [a.problem_id for a in self.answer_lists if a.lengths is None]
            if lacking:
                raise ValueError(
                    f"length_model=empirical needs per-answer lengths; {len(lacking)} problem(s) have none, "
                    f"e.g. {lacking[:3]} (an answer-list CSV has only statistics: use length_model=lognormal)"
                )
        self.by_id = {a.problem_id: a for a in self.answer_lists}
        if len(self.by_id) != len(self.answer_lists):
            raise ValueError("generator.answer_lists: problem ids repeat")
        self.answers, self.replace = answers, replace
        self.p_correct, self.wrong_answers, self.wrong_concentration = p_correct, wrong_answers, wrong_concentration
        self.length_model = length_model
        self.mean_tokens, self.std_tokens = float(mean_tokens), float(std_tokens)
        self.min_tokens, self.max_tokens = int(min_tokens), max_tokens
        self._checker = checker
        self._pools: dict[str, _Pool] = {}

    @property
    def checker(self) -> AnswerClasses:
        if self._checker is None:
            from deepprune.answers import get_checker

            self._checker = get_checker()
        return self._checker

    # -- problems -------------------------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """The simulated problems, in the order of the answer lists."""
        return [a.problem() for a in self.answer_lists]

    # -- Generator protocol ---------------------------------------------------------------------------------
    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        pool = self.pool(problem.problem_id)
        rng = np.random.default_rng([seed, _SALT])
        size = len(pool.answers)
        if not self.replace:
            if n > size:
                raise ValueError(
                    f"simulated: problem {problem.problem_id!r} has {size} answers and replace=false, "
                    f"n={n} asked (lower n, or set generator.replace=true)"
                )
            picks = rng.permutation(size)[:n]
        elif pool.probs is None:
            picks = rng.integers(0, size, n)
        else:
            picks = rng.choice(size, size=n, p=pool.probs)
        lengths = self._lengths(pool, picks, rng)
        return [
            TraceState(
                index=i,
                seed=derive_seed(seed, i),
                handle=_Drawn(self, pool.answers[j], int(pool.classes[j]), int(length)),
            )
            for i, (j, length) in enumerate(zip(picks.tolist(), lengths.tolist()))
        ]

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        fast = self._fast_path(until)
        for state in states:
            if state.finished or self._get(state).released:
                continue
            drawn = self._get(state)
            answer, total = drawn.answer, drawn.length
            if until is None:
                n = total
            elif until(state):
                continue
            elif fast is not None:
                # token ends of a text-less trace: token i "ends" at i + 1 (only their count matters)
                n = int(fast("", range(1, total + 1), None, start=state.num_tokens))
            else:
                n = state.num_tokens
                while n < total:
                    n += 1
                    state.num_tokens = n
                    if until(state):
                        break
            n = min(max(n, state.num_tokens), total)
            state.num_tokens = n
            if n >= total:
                state.finished = True
                state.answer = answer

    def release(self, states: list[TraceState]) -> None:
        for state in states:
            self._get(state).released = True

    def close(self) -> None:
        return None  # nothing held: each state carries its draw

    # -- simulator-only -------------------------------------------------------------------------------------
    def peek_answer(self, state: TraceState) -> str | None:
        """The final answer this trace WILL reach (used by the oracle and simulated judges and pass@k)."""
        return self._get(state).answer

    def answer_class(self, state: TraceState) -> int:
        """Equivalence class of the trace's final answer within its problem (-1 when it has no answer)."""
        return self._get(state).answer_class

    def full_tokens(self, state: TraceState) -> int:
        """Tokens of the complete trace."""
        return self._get(state).length

    def pool(self, problem_id: str) -> _Pool:
        """The answers (with their equivalence classes) and length parameters drawn from for one problem."""
        if problem_id not in self._pools:
            self._pools[problem_id] = self._build_pool(problem_id)
        return self._pools[problem_id]

    # -- internals ------------------------------------------------------------------------------------------
    def _get(self, state: TraceState) -> _Drawn:
        drawn = state.handle
        if not isinstance(drawn, _Drawn) or drawn.owner is not self:
            raise KeyError(f"simulated: state {state.index} (seed {state.seed}) was not started by this generator")
        return drawn

    @staticmethod
    def _fast_path(until: Callable[[TraceState], bool] | None) -> Callable[..., int] | None:
        if until is None:
            return None
        rule = getattr(until, "__self__", until)  # a bound PrefixRule.reached -> the rule
        kind = getattr(rule, "kind", "tokens")
        generated = getattr(rule, "counts_generated_tokens", True)  # a token rule may count another tokenizer's
        if callable(generated):
            generated = generated()
        if kind != "tokens" or not generated:
            what = "reasoning words" if kind == "words" else "tokens of a tokenizer other than the generator's"
            raise ValueError(
                f"simulated traces have no text: a prefix rule of {what} ({rule!r}) cannot be evaluated on them; "
                "use a prefix of generated tokens (kind tokens, tokenizer null)"
            )
        fast = getattr(rule, "first_index", None)
        return fast if callable(fast) else None

    def _classes(self, answers: Sequence[str | None], gold: str | None) -> tuple[np.ndarray, int | None]:
        """Class ids of ``answers`` (one checker pass over the distinct strings) and the class of ``gold``."""
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        ids = self.checker.classes(distinct + ([gold] if gold is not None else []))
        of = dict(zip(distinct, ids))
        classes = np.array([-1 if a is None else of[a] for a in answers], dtype=np.int64)
        gold_class = ids[-1] if gold is not None else None
        return classes, gold_class

    def _build_pool(self, problem_id: str) -> _Pool:
        source = self.by_id.get(problem_id)
        if source is None:
            raise KeyError(f"simulated: no answer list for problem {problem_id!r}")
        mean = source.mean_tokens if source.mean_tokens else self.mean_tokens
        std = source.std_tokens if source.std_tokens is not None else self.std_tokens
        if self.answers == "empirical":
            classes, _ = self._classes(source.answers, None)
            lengths = np.asarray(source.lengths, dtype=np.int64) if source.lengths is not None else None
            return _Pool(list(source.answers), classes, None, lengths, mean, std)
        correct = source.gold if source.gold is not None else "0"
        p = self.p_correct
        if p is None:
            emp, gold_class = self._classes(source.answers, source.gold)
            p = float(np.mean(emp == gold_class)) if gold_class is not None else 0.0
        wrong = [str(WRONG_BASE + k) for k in range(self.wrong_answers)]
        classes, _ = self._classes([correct, *wrong], None)
        if len(set(classes.tolist())) != len(classes):
            raise ValueError(f"simulated: problem {problem_id!r}: a parametric wrong answer equals its reference")
        # the wrong-answer split is a property of the problem, the same for every arrival order (seed)
        rng = np.random.default_rng([zlib.crc32(problem_id.encode("utf-8")), _SALT])
        split = rng.dirichlet(np.full(self.wrong_answers, self.wrong_concentration))
        probs = np.concatenate([[p], (1 - p) * split])
        return _Pool([correct, *wrong], classes, probs / probs.sum(), None, mean, std)

    def _lengths(self, pool: _Pool, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(picks)
        if self.length_model == "empirical":
            lengths = pool.lengths[picks]
        elif self.length_model == "constant" or pool.std == 0:
            lengths = np.full(n, round(pool.mean))
        else:
            mu, sigma = lognormal_params(pool.mean, pool.std)
            lengths = np.rint(rng.lognormal(mu, sigma, n))
        hi = self.max_tokens if self.max_tokens is not None else np.iinfo(np.int64).max
        return np.clip(lengths, self.min_tokens, hi).astype(np.int64)


def answer_lists_from_traces(
    traces: Sequence[Trace], models: Sequence[str] | None = None, tokenizer: Any = None
) -> list[AnswerList]:
    """Answer lists with per-answer lengths from real traces (for ``length_model=empirical``).

    Answers and token counts come from :class:`~deepprune.online.generators.replay.ReplayGenerator` (its
    ``num_tokens`` / tokenizer rules and answer extraction), so a simulation of these traces counts exactly
    what their replay counts.
    """
    from deepprune.online.generators.replay import ReplayGenerator

    replay = ReplayGenerator(traces, models=models, shuffle=False, tokenizer=tokenizer)
    out = []
    for problem in replay.problems():
        states = replay.start(problem, replay.available(problem.problem_id), seed=0)
        lengths = [replay.full_tokens(s) for s in states]
        out.append(
            AnswerList(
                problem_id=problem.problem_id,
                question=problem.question,
                gold=problem.gold,
                answers=[replay.peek_answer(s) for s in states],
                mean_tokens=float(np.mean(lengths)),
                median_tokens=float(np.median(lengths)),
                std_tokens=float(np.std(lengths)),
                lengths=lengths,
                dataset=problem.dataset,
            )
        )
    return out
