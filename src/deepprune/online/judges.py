"""Pair judges for online clustering: P(two unfinished traces reach the same answer).

Every judge scores a batch of ``(TraceState, TraceState)`` pairs (prefix snapshots; ``.text`` is what the judge
reads, already cut by the policy's prefix rule) and returns an array of P(same) in [0, 1]:

- :class:`ScorerJudge`: any `deepprune.judge.scorers.PairScorer` (built lazily, on the first use): a trained
  judge's export (:func:`exported_judge`, ``judge=exported`` on transformers, ``judge=vllm`` served by vLLM: the one
  loader `deepprune.judge.scorers.load_scorer`), the SentenceBERT-cosine reference (``judge=embedding``) or a
  zero-shot LLM. A scorer that reads a pair in one order (a generative judge) is scored in both orders and averaged
  (``symmetric=True``, the default; trl's judges fight position bias the same way): twice the judge's forward
  passes and input tokens, not twice ``judge_calls``. An order-invariant scorer (siamese, cosine) is read once.
  It carries the judge's prefix rule (``prefix_rule``, from the export) and the problems it trained on
  (``seen_problems``).
- :class:`OracleJudge`: 1.0 when the two traces' FINAL answers are equivalent, else 0.0. It needs the final
  answers while traces are still unfinished, which only replay knows (``ReplayGenerator.peek_answer``): it is a
  replay-only upper bound on any judge. A live generator would have to finish every trace first, which
  defeats pruning, so attaching it to a generator without ``peek_answer`` raises.
- :class:`ConstantJudge`: a fixed p (p >= tau puts everything in one cluster, p < tau gives singletons).

A judge may also have ``prepare(states)``, called once with all prefixes of a problem before clustering (a scorer
that embeds texts on their own embeds them there in batches: each trace is embedded once either way).

Accounting: ``judge_calls`` counts pair judgments; ``input_tokens(pairs)`` counts the prefix tokens of both
traces of every pair (generating model's tokens, as ``TraceState.num_tokens``), once per order read. The judge's
own prompt template is not counted. The oracle and constant judges read nothing (0 tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from deepprune.runtime import get_logger

if TYPE_CHECKING:
    from deepprune.answers import AnswerChecker
    from deepprune.judge.scorers import PairScorer
    from deepprune.online.generators.base import Generator, TraceState
    from deepprune.truncation import PrefixRule
    from deepprune.vllm_engine import EngineSettings

__all__ = ["PairJudge", "ScorerJudge", "exported_judge", "OracleJudge", "ConstantJudge"]

log = get_logger(__name__)

Pairs = Sequence[tuple["TraceState", "TraceState"]]


@runtime_checkable
class PairJudge(Protocol):
    """What greedy clustering needs from a judge."""

    def score(self, pairs: Pairs) -> np.ndarray: ...

    def input_tokens(self, pairs: Pairs) -> int: ...

    def attach(self, generator: Generator) -> None: ...


class ScorerJudge:
    """A `PairScorer` as an online judge; ``scorer`` is the scorer or a zero-argument factory (a Hydra
    ``_partial_``), called on first use so that configs instantiate without loading a model.

    ``export_dir`` (set by :func:`exported_judge`) lets ``seen_problems`` read the export record without loading
    the weights.
    """

    def __init__(
        self,
        scorer: PairScorer | Callable[[], PairScorer],
        symmetric: bool = True,
        export_dir: str | Path | None = None,
    ) -> None:
        # a class or a partial is a factory; anything with a bound `score` is the scorer itself
        self._factory = scorer if isinstance(scorer, type) or not hasattr(scorer, "score") else None
        self._scorer: Any = None if self._factory is not None else scorer
        self.symmetric = symmetric
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self._tokenizer: Any = None

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            self._scorer = self._factory()
        return self._scorer

    @property
    def prefix_rule(self) -> PrefixRule | None:
        """The rule the judge was trained with (its export records it; read without loading the weights); None for
        judges that are not exports (the untrained references)."""
        if self.export_dir is None:
            return getattr(self._scorer, "prefix_rule", None)
        from deepprune.judge.export import recorded_rule

        return recorded_rule(self.record, self.tokenizer)

    @property
    def tokenizer(self) -> Any:
        """The judge's tokenizer (what ``truncation.tokenizer=judge`` counts with); None when it has none."""
        if self._tokenizer is None:
            if self.export_dir is not None and self._scorer is None:
                from deepprune.judge.backbone import load_tokenizer

                self._tokenizer = load_tokenizer(self.export_dir)
            else:
                self._tokenizer = getattr(self.scorer, "tokenizer", None)
        return self._tokenizer

    @property
    def record(self) -> dict[str, Any]:
        """The export record (empty for a judge that is not an export)."""
        if self.export_dir is not None:
            from deepprune.judge.export import read_judge_record

            return read_judge_record(self.export_dir)
        return dict(getattr(self.scorer, "record", None) or {})

    @property
    def seen_problems(self) -> set[str]:
        """Problems the judge trained or validated on (recorded by `python -m deepprune.train`; empty if unknown)."""
        return set(self.record.get("seen_problems") or ())

    def seen_problems_in(self, source: str | None) -> set[str]:
        """The problems of ``source`` (a `data.sources` name of a mixture, e.g. ``skythought_amc23``) the judge
        trained or validated on. Problem ids of two sources may coincide, so a mixture's export records them per
        source; a source the record does not name (or an export of one source) gets every seen id: a judge is
        never replayed on a problem it may have seen, at the price of skipping some it has not."""
        by_source = self.record.get("seen_problems_by_source") or {}
        if source is not None and source in by_source:
            return set(by_source[source])
        return self.seen_problems

    @property
    def reads_both_orders(self) -> bool:
        return self.symmetric and not getattr(self.scorer, "order_invariant", False)

    def attach(self, generator: Generator) -> None:  # text judges need nothing from the generator
        return None

    def prepare(self, states: Sequence[TraceState]) -> None:
        """Embed every prefix of a problem in batches, when the scorer embeds texts on their own."""
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

    def input_tokens(self, pairs: Pairs) -> int:
        orders = 2 if self.reads_both_orders else 1
        return orders * sum(a.num_tokens + b.num_tokens for a, b in pairs)

    def close(self) -> None:
        close = getattr(self._scorer, "close", None)
        if callable(close):
            close()
        self._scorer = None


def exported_judge(
    export_dir: str | Path | None = None,
    backend: str = "hf",
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str = "auto",
    symmetric: bool = True,
    engine: EngineSettings | None = None,
    max_lora_rank: int = 64,
    path: str | Path | None = None,
) -> ScorerJudge:
    """The trained judge of an export directory (``judge=exported``, or ``judge=vllm`` for ``backend="vllm"``).

    The export record is checked now (a wrong directory fails before any model or engine loads); the weights load
    on first use. ``path`` is the old ``scorer.path`` spelling, accepted for one release.
    """
    if path is not None:
        log.warning("`path` (scorer.path) is deprecated and will be removed: use judge.export_dir")
        export_dir = export_dir or path
    if export_dir is None:
        raise ValueError("judge.export_dir is required: the folder written by `python -m deepprune.train` (export/)")
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise FileNotFoundError(f"judge.export_dir {export_dir} does not exist")
    from deepprune.judge.export import read_judge_record
    from deepprune.judge.scorers import load_scorer

    read_judge_record(export_dir)
    if backend == "vllm":
        from deepprune.judge.vllm_scorer import read_export

        read_export(export_dir)  # only generative judges are served by vLLM: say so before an engine starts

    def build() -> PairScorer:
        return load_scorer(export_dir, backend, device, batch_size, dtype, engine, max_lora_rank)

    return ScorerJudge(build, symmetric=symmetric, export_dir=export_dir)


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

    def __init__(self, checker: AnswerChecker | None = None) -> None:
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
