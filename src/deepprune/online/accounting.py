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
from typing import Any

import numpy as np

__all__ = ["ProblemOutcome", "score_outcome", "summarize", "format_table"]


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


def score_outcome(outcome: ProblemOutcome, gold: str | None, checker: Any = None) -> dict[str, Any]:
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
    out["accuracy"] = _mean([float(r["correct"]) for r in records])
    out["tokens_total"] = int(sum(r["tokens"] for r in records))
    out["tokens_mean"] = _mean([r["tokens"] for r in records])
    out["prefix_tokens_total"] = int(sum(r["prefix_tokens"] for r in records))
    out["continuation_tokens_total"] = int(sum(r["continuation_tokens"] for r in records))
    out["judge_calls_mean"] = _mean([r["judge_calls"] for r in records])
    out["judge_input_tokens_mean"] = _mean([r["judge_input_tokens"] for r in records])
    passes = [float(r["pass_at_k"]) for r in records if r.get("pass_at_k") is not None]
    out["pass_at_k"] = _mean(passes)
    clusters = [r["num_clusters"] for r in records if r.get("num_clusters") is not None]
    out["clusters_mean"] = _mean(clusters)
    return out


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table; floats in (0, 1] shown with 3 decimals, other floats with 1."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) <= 1 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
