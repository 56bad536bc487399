"""Token and judge accounting for online policies: one record per problem, and the summary over problems.

What is counted (replay and live count the same way, since both report ``TraceState.num_tokens``, the tokens
the generating model generated):

- ``prefix_tokens``: tokens generated before the policy's pruning decision (deepprune: every trace's prefix;
  DeepConf: the warmup traces; cons@N: 0);
- ``continuation_tokens``: tokens generated after it (deepprune: the finishers' continuations; DeepConf: the
  final-phase traces, early-stopped ones up to their stop; cons@N: all N complete traces);
- ``tokens`` = prefix + continuation; judge calls (pair judgments) and judge input tokens are reported apart.
``correct`` uses the one answer-equivalence function (``deepprune.answers``); ``pass_at_k`` is True when any
cluster representative's final answer is correct (paper Table 3, k = number of clusters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deepprune.tables import Table, to_markdown

if TYPE_CHECKING:
    from deepprune.answers import AnswerEquivalence

__all__ = ["ProblemOutcome", "score_outcome", "summarize", "format_table"]

#: metrics.json keys of an online run, read by the report (deepprune.reporting) under these names: the summary of
#: one policy (:func:`summarize`), and the run's layout around it (``runner.compute_metrics``: ``policy`` names
#: the pruning policy, ``policies`` holds each policy's summary, ``token_reduction`` is 1 - tokens / reference's).
ACCURACY = "accuracy"
TOKENS_TOTAL = "tokens_total"
TOKENS_MEAN = "tokens_mean"
PASS_AT_K = "pass_at_k"
TOKEN_REDUCTION = "token_reduction"
POLICY = "policy"
POLICIES = "policies"


@dataclass
class ProblemOutcome:
    """What a policy did on one problem (before scoring against the reference answer)."""

    policy: str
    n: int
    answer: str | None
    prefix_tokens: int = 0
    continuation_tokens: int = 0
    judge_calls: int = 0
    judge_input_tokens: int = 0
    clusters: list[list[int]] | None = None  # trace indices per cluster, in opening order
    pruned: list[int] = field(default_factory=list)  # trace indices never clustered
    finishers: list[int] = field(default_factory=list)  # trace indices that generated to the end and voted
    voters: int = 0  # answers that entered the vote
    cluster_answers: list[str | None] | None = None  # final answer of each cluster's representative (first member)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prefix_tokens + self.continuation_tokens


def score_outcome(
    outcome: ProblemOutcome, gold: str | None, checker: AnswerEquivalence | None = None
) -> dict[str, Any]:
    """The JSON record for one problem: the outcome plus ``correct`` and ``pass_at_k`` against ``gold``."""
    if checker is None:
        from deepprune.answers import get_checker

        checker = get_checker()
    rec = asdict(outcome)
    rec["tokens"] = outcome.tokens
    rec["gold"] = gold
    rec["correct"] = bool(gold is not None and checker.equivalent(outcome.answer, gold))
    if outcome.clusters is not None:
        rec["num_clusters"] = len(outcome.clusters)
        rec["cluster_sizes"] = [len(c) for c in outcome.clusters]
        rec["exhaustive_pairs"] = outcome.n * (outcome.n - 1) // 2
        reps = outcome.cluster_answers or []
        rec["pass_at_k"] = bool(gold is not None and any(checker.equivalent(a, gold) for a in reps))
    else:
        rec["num_clusters"] = None
        rec["pass_at_k"] = None
    return rec


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, tokens and judge cost over problem records of ONE policy."""
    n = len(records)
    out: dict[str, Any] = {"problems": n}
    if not n:
        return out
    out[ACCURACY] = _mean([float(r["correct"]) for r in records])
    out[TOKENS_TOTAL] = int(sum(r["tokens"] for r in records))
    out[TOKENS_MEAN] = _mean([r["tokens"] for r in records])
    out["prefix_tokens_total"] = int(sum(r["prefix_tokens"] for r in records))
    out["continuation_tokens_total"] = int(sum(r["continuation_tokens"] for r in records))
    out["judge_calls_mean"] = _mean([r["judge_calls"] for r in records])
    out["judge_input_tokens_mean"] = _mean([r["judge_input_tokens"] for r in records])
    passes = [float(r["pass_at_k"]) for r in records if r.get("pass_at_k") is not None]
    out[PASS_AT_K] = _mean(passes)
    clusters = [r["num_clusters"] for r in records if r.get("num_clusters") is not None]
    out["clusters_mean"] = _mean(clusters)
    return out


def _online_float(value: float) -> str:
    # shares and rates (accuracy, token reduction) read as 0.734, token counts as 12,345.6
    return f"{value:.3f}" if abs(value) <= 1 else f"{value:,.1f}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table (no final newline); floats in [-1, 1] with 3 decimals, others and ints with thousands
    separators, a missing cell ``-``. Written by the one table writer, :func:`deepprune.tables.to_markdown`."""
    return to_markdown(Table.from_records(rows, columns), floatfmt=_online_float, intfmt=",", missing="-").rstrip("\n")
