"""Online policies: how N parallel traces of one problem are generated, pruned and voted on.

Every policy is a class with typed arguments (``conf/policy/*.yaml``) and one implementation, a coroutine:
``await policy.arun(problem, agen, seed) -> ProblemOutcome`` on an :class:`~deepprune.online.generators.base.
AsyncGenerator` (``as_async(generator)`` makes one of any generator), so several problems can be in flight on one
generator (``online concurrency=4``, the server). ``policy.run(problem, generator, seed)`` is the same coroutine
driven to completion for synchronous callers (``run_sync(arun(problem, as_async(generator), seed))``). They all
drive the same generator contract, so replay and live runs are accounted identically.

    from deepprune.online.generators.base import as_async
    agen = as_async(generator)             # replay/simulated/hf: deterministic adapter; vLLM: its native async API
    outcomes = await asyncio.gather(*(policy.arun(p, agen, seed) for p in problems))

Judge calls under concurrency. A judge is synchronous CPU/GPU work and not safe to call from two threads at once,
so every judge call (``prepare`` and the whole greedy clustering of one problem) runs on ONE worker thread shared
by the process (:func:`judge_call`): problems queue for it one at a time, in arrival order, while the event loop
stays free to stream other problems' tokens. A judge object is thus never used concurrently, whatever the number
of policies or problems sharing it; the outcome of a problem never depends on what else is in flight.

- :class:`DeepPrunePolicy` (paper section 4.2): every trace generates its prefix (``rule.reached``) and the
  judge reads ``rule.judge_text`` of it, where the rule is (first that applies) the explicit ``prefix`` (the
  ``truncation`` group of ``online``), the rule the judge was trained with (its export records it: the judge
  scores exactly the text it was trained on), the rule of ``rule_judge`` (the oracle beside a trained judge
  pays that judge's prefix cost), or ``default_prefix`` (``scale.prefix_k`` generated tokens); greedy
  clustering on the prefixes; the largest cluster (ties: the one opened first) lets its first-arrived
  ``min(|c|, K2)`` members finish (first-arrived, not a sample: arrival order is already random under replay's
  shuffle, and it favours the traces the judge saw earliest); if every cluster is a singleton, ``K3`` traces
  sampled (seeded) from all N finish instead. All other traces are released (aborted) before the
  continuation phase. Majority vote over the finishers' answers. That finish-and-vote step is the paper's rule
  (:class:`deepprune.online.aggregation.LargestClusterVote`, the default); ``aggregation`` (``conf/aggregation/``)
  swaps in a guarded one (size-weighted vote, a floor on the finishers), and ``when_full`` chooses what happens
  once K clusters exist (``prune``, the paper, or ``assign``). With ``judge=oracle`` it is the oracle upper
  bound (``conf/policy/oracle.yaml``).
- :class:`ConsensusPolicy` (cons@N): all N traces finish; majority vote.
- :class:`DeepConfPolicy` (DeepConf online, facebookresearch/deepconf): ``warmup`` traces finish; each trace's
  lowest group confidence (minimum over sliding windows of ``window`` tokens of the mean token confidence,
  token confidence = -mean of the top-20 logprobs; the mean of all tokens when shorter than a window) gives the
  threshold as its ``percentile``-th percentile over the warmup (90 = DeepConf-low, keeps the top 10%;
  10 = DeepConf-high, keeps the top 90%). The other traces stop as soon as a full window's mean drops below
  it. The vote is confidence-weighted (weight = lowest group confidence) over warmup traces at or above the
  threshold and final traces that were not stopped. Needs ``token_confidences``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from deepprune.online.accounting import ProblemOutcome
from deepprune.online.aggregation import Aggregation, LargestClusterVote
from deepprune.online.clustering import greedy_cluster
from deepprune.online.generators.base import TraceState, as_async, run_sync
from deepprune.online.voting import majority_vote, weighted_vote
from deepprune.runtime import get_logger
from deepprune.truncation import PrefixRule, TokenPrefix

if TYPE_CHECKING:
    from deepprune.answers import AnswerChecker
    from deepprune.online.generators.base import AsyncGenerator, Generator
    from deepprune.online.judges import PairJudge
    from deepprune.sources import Problem

__all__ = [
    "Policy",
    "DeepPrunePolicy",
    "ConsensusPolicy",
    "DeepConfPolicy",
    "GroupConfidenceStop",
    "lowest_group_confidence",
    "judge_call",
]

log = get_logger(__name__)
T = TypeVar("T")


class Policy(Protocol):
    name: str
    n: int

    async def arun(self, problem: Problem, generator: AsyncGenerator, seed: int) -> ProblemOutcome: ...

    def run(self, problem: Problem, generator: Generator, seed: int) -> ProblemOutcome: ...


class _DrivenBySync:
    """``run``: the policy's ``arun`` over ``as_async(generator)``, to completion (one implementation)."""

    async def arun(self, problem: Problem, generator: AsyncGenerator, seed: int) -> ProblemOutcome:
        raise NotImplementedError

    def run(self, problem: Problem, generator: Generator, seed: int) -> ProblemOutcome:
        return run_sync(self.arun(problem, as_async(generator), seed))


_judge_worker: ThreadPoolExecutor | None = None
_judge_worker_lock = threading.Lock()


async def judge_call(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the process's one judge worker thread (see the module docstring) and await it."""
    global _judge_worker
    with _judge_worker_lock:
        if _judge_worker is None:
            _judge_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepprune-judge")
    return await asyncio.get_running_loop().run_in_executor(_judge_worker, fn, *args)


def _peek(generator: Any, state: TraceState) -> str | None:
    if state.finished:
        return state.answer
    peek = getattr(generator, "peek_answer", None)
    return peek(state) if callable(peek) else None


class DeepPrunePolicy(_DrivenBySync):
    """Prefix phase, greedy clustering, largest-cluster continuation, majority vote (Table 6 defaults)."""

    def __init__(
        self,
        judge: PairJudge,
        n: int = 512,
        tau: float = 0.5,
        max_clusters: int = 16,
        k1: int = 20,
        k2: int = 20,
        k3: int = 32,
        prefix: PrefixRule | None = None,
        default_prefix: PrefixRule | None = None,
        rule_judge: Any = None,
        name: str = "deepprune",
        checker: AnswerChecker | None = None,
        aggregation: Aggregation | None = None,
        when_full: str = "prune",
    ) -> None:
        from deepprune.online.clustering import check_settings
        from deepprune.validation import check_int_at_least

        for key, value in (("n", n), ("k2", k2), ("k3", k3)):
            check_int_at_least(f"policy.{key}", value, 1)
        check_settings(tau, max_clusters, k1, when_full, prefix="policy.")
        self.judge = judge
        self.n, self.tau, self.max_clusters = n, tau, max_clusters
        self.k1, self.k2, self.k3 = k1, k2, k3
        self.prefix, self.default_prefix, self.rule_judge = prefix, default_prefix, rule_judge
        self._rule: PrefixRule | None = None
        self.name = name
        self.checker = checker
        # which traces finish and how they vote (conf/aggregation/); None: the paper's rule with k2 and k3
        self.aggregation = aggregation if aggregation is not None else LargestClusterVote(k2=k2, k3=k3)
        self.when_full = when_full  # once K clusters exist: prune the rest (paper) or keep assigning

    @property
    def rule(self) -> PrefixRule:
        """The prefix rule in force (see the module docstring), resolved once."""
        if self._rule is None:
            trained = getattr(self.judge, "prefix_rule", None)
            if self.prefix is not None:
                rule = self.prefix
                if _needs_judge(rule):  # the judge's tokenizer, or the rule judge's beside an oracle
                    tokenizer = getattr(self.judge, "tokenizer", None) or getattr(self.rule_judge, "tokenizer", None)
                    rule = rule.bind(tokenizer)
                if trained is not None and rule != trained:
                    log.warning(
                        "%s: the explicit prefix rule %s differs from the one the judge was trained with %s; "
                        "the explicit one is used (drop the `truncation` override to use the judge's)",
                        self.name, rule.to_record(), trained.to_record(),
                    )  # fmt: skip
            elif trained is not None:
                rule = trained
            elif self.rule_judge is not None and getattr(self.rule_judge, "prefix_rule", None) is not None:
                rule = self.rule_judge.prefix_rule
            else:
                rule = self.default_prefix if self.default_prefix is not None else TokenPrefix(500, tokenizer=None)
            log.info("%s: prefix rule %s", self.name, rule.to_record())
            self._rule = _own_tokenizer(rule)
        return self._rule

    async def arun(self, problem: Problem, generator: AsyncGenerator, seed: int) -> ProblemOutcome:
        states = await generator.start(problem, self.n, seed)
        self.judge.attach(generator)
        rule = self.rule
        await generator.advance(states, until=rule.reached)
        prefix_tokens = sum(s.num_tokens for s in states)
        # what the judge reads: the rule's cut of each generated prefix (the text it was trained on)
        snapshots = [replace(s, text=rule.judge_text(s), token_confidences=list(s.token_confidences)) for s in states]
        rng = np.random.default_rng([seed, 0xC1])
        result = await judge_call(self._cluster, snapshots, rng)
        selection = self.aggregation.select(result, len(states), rng)
        chosen = selection.finishers
        keep = set(chosen)
        await generator.release([s for i, s in enumerate(states) if i not in keep])
        finishers = [states[i] for i in chosen]
        before = {s.index: s.num_tokens for s in finishers}
        await generator.advance(finishers)
        continuation = sum(s.num_tokens - before[s.index] for s in finishers)

        vote = self.aggregation.vote(selection, [s.answer for s in finishers], self.checker)
        return ProblemOutcome(
            policy=self.name,
            n=len(states),
            answer=vote.answer,
            prefix_tokens=prefix_tokens,
            continuation_tokens=continuation,
            judge_calls=result.judge_calls,
            judge_input_tokens=result.judge_input_tokens,
            clusters=[[states[i].index for i in c] for c in result.clusters],
            pruned=[states[i].index for i in result.pruned],
            finishers=[s.index for s in finishers],
            voters=sum(a is not None for a in (s.answer for s in finishers)),
            cluster_answers=[_peek(generator, states[c[0]]) for c in result.clusters],
            extra={"finish_rule": selection.rule, "judge_batches": result.judge_batches},
        )

    def _cluster(self, snapshots: list[TraceState], rng: np.random.Generator) -> Any:
        """Every judge call of one problem (on the judge worker): batch preparation, then greedy clustering."""
        prepare = getattr(self.judge, "prepare", None)
        if callable(prepare):
            prepare(snapshots)
        return greedy_cluster(snapshots, self.judge, self.tau, self.max_clusters, self.k1, rng, self.when_full)


class ConsensusPolicy(_DrivenBySync):
    """cons@N: every trace finishes; majority vote."""

    def __init__(self, n: int = 512, name: str | None = None, checker: AnswerChecker | None = None) -> None:
        if n < 1:
            raise ValueError(f"policy.n must be >= 1, got {n}")
        self.n = n
        self.name = name or f"cons@{n}"
        self.checker = checker

    async def arun(self, problem: Problem, generator: AsyncGenerator, seed: int) -> ProblemOutcome:
        states = await generator.start(problem, self.n, seed)
        await generator.advance(states)
        vote = majority_vote([s.answer for s in states], self.checker)
        return ProblemOutcome(
            policy=self.name,
            n=len(states),
            answer=vote.answer,
            continuation_tokens=sum(s.num_tokens for s in states),
            finishers=[s.index for s in states],
            voters=sum(s.answer is not None for s in states),
        )


def lowest_group_confidence(confidences: Sequence[float], window: int = 2048) -> float:
    """DeepConf's lowest group confidence: min over sliding windows of the mean token confidence.

    Shorter than one window: the mean of all tokens (0.0 for no tokens), as DeepConf's ``compute_least_grouped``.
    """
    c = np.asarray(confidences, dtype=float)
    if c.size == 0:
        return 0.0
    if c.size < window:
        return float(c.mean())
    csum = np.concatenate([[0.0], np.cumsum(c)])
    return float(((csum[window:] - csum[:-window]) / window).min())


class GroupConfidenceStop:
    """Stop predicate of DeepConf online: a full window's mean token confidence is below ``threshold``."""

    def __init__(self, threshold: float, window: int = 2048) -> None:
        self.threshold = threshold
        self.window = window

    def __call__(self, state: TraceState) -> bool:
        c = state.token_confidences
        return len(c) >= self.window and float(np.mean(c[-self.window :])) < self.threshold

    def first_index(
        self, text: str, token_ends: Sequence[int], confidences: Sequence[float] | None = None, start: int = 0
    ) -> int:
        """Fewest tokens (at least ``start``) at which the predicate holds; ``len(token_ends)`` if never."""
        total = len(token_ends)
        if not confidences or total < self.window:
            return total
        csum = np.concatenate([[0.0], np.cumsum(np.asarray(confidences, dtype=float))])
        ns = np.arange(max(start, self.window), total + 1)
        hits = ns[(csum[ns] - csum[ns - self.window]) / self.window < self.threshold]
        return int(hits[0]) if hits.size else total


class DeepConfPolicy(_DrivenBySync):
    """DeepConf online (warmup, percentile threshold, early stop, confidence-weighted vote)."""

    def __init__(
        self,
        n: int = 512,
        warmup: int = 16,
        percentile: float = 90.0,
        window: int = 2048,
        name: str | None = None,
        checker: AnswerChecker | None = None,
    ) -> None:
        if n < 1 or warmup < 1 or window < 1:
            raise ValueError(f"policy.n, policy.warmup and policy.window must be >= 1, got {n}, {warmup}, {window}")
        if not 0 <= percentile <= 100:
            raise ValueError(f"policy.percentile must be in [0, 100], got {percentile}")
        self.n, self.warmup, self.percentile, self.window = n, warmup, percentile, window
        self.name = name or ("deepconf_low" if percentile >= 50 else "deepconf_high")
        self.checker = checker

    def _lgc(self, state: TraceState) -> float:
        if state.num_tokens and not state.token_confidences:
            raise ValueError(
                f"{self.name} needs token confidences, and trace {state.index} has none "
                "(replay: the trace source has no token_confidences; live: enable logprobs)"
            )
        return lowest_group_confidence(state.token_confidences, self.window)

    async def arun(self, problem: Problem, generator: AsyncGenerator, seed: int) -> ProblemOutcome:
        states = await generator.start(problem, self.n, seed)
        warm, rest = states[: self.warmup], states[self.warmup :]
        await generator.advance(warm)
        warm_conf = [self._lgc(s) for s in warm]
        bar = float(np.percentile(warm_conf, self.percentile))
        await generator.advance(rest, until=GroupConfidenceStop(bar, self.window))
        stopped = [s for s in rest if not s.finished]
        await generator.release(stopped)

        answers: list[str | None] = []
        weights: list[float] = []
        for s, conf in zip(warm, warm_conf):
            if conf >= bar and s.answer is not None:
                answers.append(s.answer)
                weights.append(conf)
        for s in rest:
            if s.finished and s.answer is not None:
                answers.append(s.answer)
                weights.append(self._lgc(s))
        vote = weighted_vote(answers, weights, self.checker)
        return ProblemOutcome(
            policy=self.name,
            n=len(states),
            answer=vote.answer,
            prefix_tokens=sum(s.num_tokens for s in warm),
            continuation_tokens=sum(s.num_tokens for s in rest),
            finishers=[s.index for s in states if s.finished],
            voters=len(answers),
            extra={"threshold": bar, "stopped": [s.index for s in stopped]},
        )


def _own_tokenizer(rule: PrefixRule) -> PrefixRule:
    """The rule with a private copy of its tokenizer. The rule counts and cuts prefixes on the generation side
    (event loop, engine thread) while the judge worker may be tokenizing with the same (judge's) tokenizer and
    other truncation settings; a Rust tokenizer changed in one thread while another encodes fails ("Already
    borrowed"), so the two never share one."""
    import copy

    tokenizer = getattr(rule, "tokenizer", None)
    if tokenizer is None:
        return rule
    try:
        private = copy.deepcopy(tokenizer)
    except Exception as err:  # noqa: BLE001 - a tokenizer that cannot be copied is shared, as before
        log.warning("prefix rule: could not copy its tokenizer (%s); it is shared with the judge", err)
        return rule
    own = copy.copy(rule)
    own.tokenizer = private  # type: ignore[attr-defined]
    return own


def _needs_judge(rule: PrefixRule) -> bool:
    from deepprune.truncation import JUDGE_TOKENIZER

    return isinstance(rule, TokenPrefix) and rule.spec == JUDGE_TOKENIZER and rule.tokenizer is None
