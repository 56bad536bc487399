"""Pair judges for online clustering: P(two unfinished traces reach the same answer).

Every judge scores a batch of ``(TraceState, TraceState)`` pairs (prefix snapshots; ``.text`` is the prefix)
and returns an array of P(same) in [0, 1]:

- :class:`ExportedJudge`: the trained judge export (``deepprune.judge.export.load_scorer``), batched. A
  generative judge reads the pair in one order, so each pair is scored in both orders and averaged
  (``symmetric=True``, the default; trl's judges fight position bias the same way). This doubles the judge's
  forward passes and input tokens but not ``judge_calls``. A siamese export is order-invariant by construction:
  it is read once, and its scorer embeds each prefix once (in ``prepare``), whatever the number of pairs.
- :class:`OracleJudge`: 1.0 when the two traces' FINAL answers are equivalent, else 0.0. It needs the final
  answers while traces are still unfinished, which only replay knows (``ReplayGenerator.peek_answer``): it is a
  replay-only upper bound on any judge. A live generator would have to finish every trace first, which
  defeats pruning, so attaching it to a generator without ``peek_answer`` raises.
- :class:`EmbeddingJudge`: cosine of all-MiniLM-L6-v2 embeddings mapped to [0, 1]
  (``deepprune.judge.scorers.EmbeddingScorer``, the paper's SentenceBERT reference).
- :class:`ConstantJudge`: a fixed p (p >= tau puts everything in one cluster, p < tau gives singletons).

A judge may also have ``prepare(states)``, called once with all prefixes of a problem before clustering (the
embedding judge embeds them in batches there: each trace is embedded once either way).

Accounting: ``judge_calls`` counts pair judgments; ``input_tokens(pairs)`` counts the prefix tokens of both
traces of every pair (generating model's tokens, as ``TraceState.num_tokens``), once per order read. The judge's
own prompt template is not counted. The oracle and constant judges read nothing (0 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from deepprune.online.generators.base import Generator, TraceState

__all__ = ["PairJudge", "ExportedJudge", "OracleJudge", "EmbeddingJudge", "ConstantJudge"]

Pairs = Sequence[tuple["TraceState", "TraceState"]]


@runtime_checkable
class PairJudge(Protocol):
    """What greedy clustering needs from a judge."""

    def score(self, pairs: Pairs) -> np.ndarray: ...

    def input_tokens(self, pairs: Pairs) -> int: ...

    def attach(self, generator: Generator) -> None: ...


class _TextJudge:
    """Shared plumbing for judges that read the prefix texts."""

    reads_both_orders = False

    def attach(self, generator: Generator) -> None:  # text judges need nothing from the generator
        return None

    def input_tokens(self, pairs: Pairs) -> int:
        orders = 2 if self.reads_both_orders else 1
        return orders * sum(a.num_tokens + b.num_tokens for a, b in pairs)


class ExportedJudge(_TextJudge):
    """The trained judge, loaded from an export directory (loaded lazily on the first score)."""

    def __init__(
        self, export_dir: str | Path, device: str = "cpu", batch_size: int = 8, symmetric: bool = True
    ) -> None:
        self.export_dir = Path(export_dir)
        if not self.export_dir.is_dir():
            raise FileNotFoundError(f"judge export_dir {self.export_dir} does not exist (judge.export_dir)")
        self.device = device
        self.batch_size = batch_size
        self.symmetric = symmetric
        self._scorer: Any = None

    @property
    def seen_problems(self) -> set[str]:
        """Problems the judge trained or validated on (recorded by `python -m deepprune.train`; empty if unknown)."""
        from deepprune.judge.export import read_judge_record

        return set(read_judge_record(self.export_dir).get("seen_problems") or ())

    @property
    def reads_both_orders(self) -> bool:
        return self.symmetric and not getattr(self.scorer, "order_invariant", False)

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from deepprune.judge.export import load_scorer

            self._scorer = load_scorer(self.export_dir, device=self.device, batch_size=self.batch_size)
        return self._scorer

    def prepare(self, states: Sequence[TraceState]) -> None:
        """Embed every prefix of a problem in batches, when the judge embeds texts on their own (siamese)."""
        embed = getattr(self.scorer, "embed", None)
        if embed is not None:
            embed([s.text for s in states])

    def score(self, pairs: Pairs) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        texts = [(a.text, b.text) for a, b in pairs]
        if not self.reads_both_orders:
            return np.asarray(self.scorer.score(texts), dtype=float)
        both = np.asarray(self.scorer.score(texts + [(b, a) for a, b in texts]), dtype=float)
        return (both[: len(texts)] + both[len(texts) :]) / 2


class EmbeddingJudge(_TextJudge):
    """Cosine similarity of MiniLM sentence embeddings, (cos + 1) / 2."""

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 128) -> None:
        self.model_dir = model_dir
        self.max_tokens = max_tokens
        self._scorer: Any = None

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from deepprune.judge.scorers import EmbeddingScorer

            self._scorer = EmbeddingScorer(model_dir=self.model_dir, max_tokens=self.max_tokens)
        return self._scorer

    def prepare(self, states: Sequence[TraceState]) -> None:
        """Embed every prefix of a problem in a few batched passes (each arriving trace then costs no forward)."""
        self.scorer.embed([s.text for s in states])

    def score(self, pairs: Pairs) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        return np.asarray(self.scorer.score([(a.text, b.text) for a, b in pairs]), dtype=float)


class ConstantJudge:
    """Always ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"ConstantJudge p must be in [0, 1], got {p}")
        self.p = p

    def attach(self, generator: Generator) -> None:
        return None

    def score(self, pairs: Pairs) -> np.ndarray:
        return np.full(len(pairs), self.p, dtype=float)

    def input_tokens(self, pairs: Pairs) -> int:
        return 0


class OracleJudge:
    """Answer equivalence of the final answers (replay only): the upper bound of any judge."""

    def __init__(self, checker: Any = None) -> None:
        self._checker = checker
        self._generator: Any = None

    @property
    def checker(self) -> Any:
        if self._checker is None:
            from deepprune.answers import get_checker

            self._checker = get_checker()
        return self._checker

    def attach(self, generator: Generator) -> None:
        if not callable(getattr(generator, "peek_answer", None)):
            raise TypeError(
                f"the oracle judge needs final answers of unfinished traces, which only replay has; "
                f"{type(generator).__name__} has no peek_answer (use generator=replay)"
            )
        self._generator = generator

    def score(self, pairs: Pairs) -> np.ndarray:
        if self._generator is None:
            raise RuntimeError("OracleJudge.attach(generator) must be called before score()")
        peek = self._generator.peek_answer
        return np.array([float(self.checker.equivalent(peek(a), peek(b))) for a, b in pairs], dtype=float)

    def input_tokens(self, pairs: Pairs) -> int:
        return 0
