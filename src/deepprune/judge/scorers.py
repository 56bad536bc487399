"""Pair scorers: anything that maps (trace a, trace b) pairs to P(same final answer) in [0, 1].

- `HeadScorer`: a judge head (trained and exported, see `load_scorer`) run batched, in eval mode, without grad.
- `SiameseScorer`: the siamese judge's `HeadScorer`: each distinct text is embedded once and remembered, so n
  traces cost n encoder passes for any number of pairs (the same scores as the pair forward); order-invariant.
- `ZeroShotLLMScorer`: an untrained generative head (the paper's zero-shot LLM reference, 0.66-0.68 AUROC).
- `EmbeddingScorer`: SentenceBERT cosine of mean-pooled all-MiniLM-L6-v2 embeddings of the first `max_tokens`
  word pieces, mapped to [0, 1] as (cos + 1) / 2 (the paper's 0.58 AUROC reference).

`load_scorer(export_dir, backend="hf"|"vllm")` is THE loader of an exported judge (`deepprune.judge.export` only
reads and writes export folders): the HF backend gives a `HeadScorer` (or a `SiameseScorer` for a siamese export),
the vLLM backend a `deepprune.judge.vllm_scorer.VLLMJudgeScorer`. Every scorer has `score(pairs)`, `tokenizer`,
`prefix_rule` (the rule recorded in its export, None for the untrained references) and `record` (the export
record, or None); `order_invariant` says whether (a, b) and (b, a) always score the same.

Texts are expected already cut by the judge's prefix rule (`deepprune.truncation`), as the judge saw them in
training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from deepprune.runtime import get_logger

if TYPE_CHECKING:
    from deepprune.truncation import PrefixRule

__all__ = [
    "EmbeddingScorer",
    "HeadScorer",
    "PairScorer",
    "SiameseScorer",
    "ZeroShotLLMScorer",
    "load_scorer",
]

log = get_logger(__name__)


@runtime_checkable
class PairScorer(Protocol):
    """What evaluation and the online judge need from a scorer: P(same) per (a, b) text pair, in [0, 1]."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


class HeadScorer:
    """Batched P(same) from a judge head; pairs are length-sorted into batches to waste little padding."""

    order_invariant = False

    def __init__(self, head: Any, batch_size: int = 8, record: dict[str, Any] | None = None) -> None:
        from deepprune.judge.export import recorded_rule

        self.head = head.eval()
        self.batch_size = batch_size
        #: the export record (None for a head that was not loaded from an export)
        self.record = record
        #: the prefix rule the judge was trained with (from its export), if known
        self.prefix_rule: PrefixRule | None = recorded_rule(record, head.tokenizer) if record else None

    @property
    def tokenizer(self) -> Any:
        return self.head.tokenizer

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import torch

        if not pairs:
            return np.zeros(0, dtype=np.float64)
        device = next(self.head.parameters()).device
        encoded = [self.head.encode(a, b) for a, b in pairs]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.empty(len(encoded), dtype=np.float64)
        from deepprune.judge.heads import pad_batch

        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = pad_batch([encoded[i] for i in idx], self.head.pad_token_id)
                logits = self.head(ids.to(device), mask.to(device)).float()
                out[idx] = logits.softmax(-1)[:, 1].cpu().numpy()
        return out


class SiameseScorer(HeadScorer):
    """P(same) of a siamese head from remembered per-text embeddings.

    A siamese pair input ``[CLS] a [SEP] b [SEP]`` is split back into ``[CLS] a [SEP]`` and ``[CLS] b [SEP]``, each
    cut to ``segment_max_tokens`` on its own, so a text's embedding does not depend on its partner: embedding each
    text alone gives the pair forward's scores (tested), at n encoder passes for n traces instead of two per pair.
    The pair layer is symmetric in (a, b), so callers need not score both orders (`order_invariant`).
    """

    order_invariant = True

    def __init__(
        self, head: Any, batch_size: int = 32, record: dict[str, Any] | None = None, cache_size: int = 65536
    ) -> None:
        super().__init__(head, batch_size, record)
        config = head.backbone.config
        if getattr(config, "model_type", None) != "deepprune_siamese_bert":
            raise TypeError(
                f"SiameseScorer needs a siamese head, got model_type {getattr(config, 'model_type', None)}"
            )
        pair_room = 2 * config.segment_max_tokens + 1
        if head.max_length is not None and head.max_length < pair_room:
            # the pair's own truncation would then cut a text depending on its partner's length
            raise ValueError(f"siamese max_length {head.max_length} < 2 * segment_max_tokens + 1 = {pair_room}")
        self.segment_max_tokens = int(config.segment_max_tokens)
        self.cache_size = cache_size
        self._cache: dict[str, Any] = {}

    def embed(self, texts: Sequence[str]) -> Any:
        """Unit-norm embeddings [N, D] (a torch tensor on the head's device), remembered per text."""
        import torch

        from deepprune.judge.heads import pad_batch

        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if len(self._cache) + len(todo) > self.cache_size:
            self._cache.clear()  # texts of earlier problems; the online runner moves on and never returns
            todo = list(dict.fromkeys(texts))
        model = self.head.backbone
        device = next(model.parameters()).device
        tokenizer = self.head.tokenizer
        encoded = [tokenizer(t, truncation=True, max_length=self.segment_max_tokens)["input_ids"] for t in todo]
        order = sorted(range(len(todo)), key=lambda i: len(encoded[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = pad_batch([encoded[i] for i in idx], self.head.pad_token_id)
                for i, vec in zip(idx, model.embed(ids.to(device), mask.to(device))):
                    self._cache[todo[i]] = vec
        if not texts:
            return torch.zeros((0, model.config.hidden_size), device=device)
        return torch.stack([self._cache[t] for t in texts])

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import torch

        if not pairs:
            return np.zeros(0, dtype=np.float64)
        u = self.embed([a for a, _ in pairs])
        v = self.embed([b for _, b in pairs])
        with torch.inference_mode():
            logit = self.head.backbone.classifier(u, v).float()
        return torch.sigmoid(logit).cpu().numpy().astype(np.float64)


class ZeroShotLLMScorer(HeadScorer):
    """An untrained generative head asked the judge prompt directly (build it with `finetune: frozen`)."""

    def __init__(self, head: Any, batch_size: int = 4) -> None:
        if getattr(head, "kind", None) != "generative":
            raise TypeError(f"ZeroShotLLMScorer needs a generative head, got {type(head).__name__}")
        head.requires_grad_(False)
        super().__init__(head, batch_size)


class EmbeddingScorer:
    """Cosine similarity of mean-pooled sentence embeddings (all-MiniLM-L6-v2 by default), as (cos + 1) / 2.

    Embeddings are cached per text: within a problem each trace appears in many pairs. The cosine is symmetric,
    so one order is read.
    """

    order_invariant = True
    record: dict[str, Any] | None = None
    prefix_rule: PrefixRule | None = None  # untrained: the caller's rule decides what it reads

    def __init__(
        self,
        model_dir: str | Path | None = None,
        max_tokens: int = 128,
        batch_size: int = 32,
        device: str = "cpu",
        cache_size: int = 65536,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_dir is None:
            from deepprune.assets import minilm_dir

            model_dir = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.device = device
        self.cache_size = cache_size  # a server scores new texts for ever: the cache must not grow with them
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings [N, D] of the first `max_tokens` word pieces (special tokens included)."""
        import torch

        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if len(self._cache) + len(todo) > self.cache_size:
            self._cache.clear()  # texts of earlier problems, as SiameseScorer does
            todo = list(dict.fromkeys(texts))
        todo.sort(key=len)
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                enc = self.tokenizer(
                    chunk, truncation=True, max_length=self.max_tokens, padding=True, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                for text, vec in zip(chunk, pooled.cpu().numpy()):
                    self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        ea = self.embed([a for a, _ in pairs])
        eb = self.embed([b for _, b in pairs])
        cos = np.clip((ea * eb).sum(-1).astype(np.float64), -1.0, 1.0)
        return (cos + 1.0) / 2.0


def load_scorer(
    export_dir: str | Path,
    backend: str = "hf",
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str = "auto",
    engine: Any = None,
    max_lora_rank: int = 64,
) -> Any:
    """The scorer of an exported judge: ``backend="hf"`` (transformers, on ``device``) or ``"vllm"`` (a generative
    judge served by vLLM with ``engine`` settings, `deepprune.vllm_engine.EngineSettings`).

    An HF siamese export gets a `SiameseScorer` (per-text embeddings remembered, same scores), others a
    `HeadScorer`. The record is read (and a bad export rejected) before any weights load. An export with a
    ``calibration`` record (fitted on the validation pairs by `python -m deepprune.train`) scores calibrated
    probabilities (`deepprune.judge.calibration.CalibratedScorer`).
    """
    from deepprune.judge.calibration import calibrated_scorer
    from deepprune.judge.export import load_head, read_judge_record

    record = read_judge_record(export_dir)
    if backend == "vllm":
        from deepprune.judge.vllm_scorer import VLLMJudgeScorer

        return calibrated_scorer(VLLMJudgeScorer(export_dir, engine=engine, max_lora_rank=max_lora_rank), record)
    if backend != "hf":
        raise ValueError(f"judge.backend must be 'hf' or 'vllm', got {backend!r}")
    head = load_head(export_dir, device, dtype)
    if getattr(head.backbone.config, "model_type", None) == "deepprune_siamese_bert":
        return calibrated_scorer(SiameseScorer(head, batch_size=batch_size, record=record), record)
    return calibrated_scorer(HeadScorer(head, batch_size=batch_size, record=record), record)
