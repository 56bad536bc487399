"""Pair scorers: anything that maps (trace a, trace b) pairs to P(same final answer) in [0, 1].

- `HeadScorer`: a judge head (trained and exported, see `load_scorer`) run batched, in eval mode, without grad.
- `SiameseScorer`: the siamese judge's `HeadScorer`: each distinct text is embedded once and remembered, so n
  traces cost n encoder passes for any number of pairs (the same scores as the pair forward); order-invariant.
- `ZeroShotLLMScorer`: an untrained generative head (the paper's zero-shot LLM reference, 0.66-0.68 AUROC).
- `EmbeddingScorer`: SentenceBERT cosine of mean-pooled all-MiniLM-L6-v2 embeddings of the first `max_tokens`
  word pieces, mapped to [0, 1] as (cos + 1) / 2 (the paper's 0.58 AUROC reference).

Texts are expected already truncated (first-k tokens or reasoning words), as the judge saw them in training.
Offline-evaluation helpers used by `python -m deepprune.evaluate`: `sample_pairs` (seeded, stratified by model),
`truncator_from_settings` and `score_pairs_resumable` (scores.jsonl written incrementally, resumed on restart).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepprune.judge.export import load_scorer
from deepprune.runtime import append_jsonl, get_logger, progress, read_jsonl_records

__all__ = [
    "EmbeddingScorer",
    "HeadScorer",
    "PairScorer",
    "SiameseScorer",
    "ZeroShotLLMScorer",
    "from_export",
    "load_scorer",
]

log = get_logger(__name__)


@runtime_checkable
class PairScorer(Protocol):
    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


class HeadScorer:
    """Batched P(same) from a judge head; pairs are length-sorted into batches to waste little padding."""

    def __init__(self, head: Any, batch_size: int = 8, truncation: dict[str, Any] | None = None) -> None:
        self.head = head.eval()
        self.batch_size = batch_size
        #: the prefix rule the judge was trained with (from its export), if known
        self.truncation = truncation

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
        self, head: Any, batch_size: int = 32, truncation: dict[str, Any] | None = None, cache_size: int = 65536
    ) -> None:
        super().__init__(head, batch_size, truncation)
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

    Embeddings are cached per text: within a problem each trace appears in many pairs.
    """

    def __init__(
        self, model_dir: str | Path | None = None, max_tokens: int = 128, batch_size: int = 32, device: str = "cpu"
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
        self.truncation: dict[str, Any] | None = None  # no trained prefix rule: evaluation's config decides
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings [N, D] of the first `max_tokens` word pieces (special tokens included)."""
        import torch

        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
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


def from_export(path: str | Path, device: str = "cpu", batch_size: int = 8, dtype: str = "auto") -> HeadScorer:
    """`load_scorer` under the name the `scorer=exported` config uses (`scorer.path=<export dir>`)."""
    return load_scorer(path, device=device, batch_size=batch_size, dtype=dtype)


# -- offline evaluation helpers -----------------------------------------------------------------------------------


def sample_pairs(traces: Iterable[Any], max_pairs: int | None, seed: int, checker: Any = None) -> tuple[list, int]:
    """Within-(problem, model) pairs, a seeded subsample stratified by model, labelled by answer equivalence.

    Returns (pairs, excluded): `deepprune.pairs.TracePair`s in a stable order and the number of traces left out
    for having no extractable answer. With `max_pairs`, each model gets an equal share (or all its pairs when it
    has fewer), so per-model metrics rest on similar counts. Only the sampled pairs are labelled (one
    `checker.equivalent` call each), which keeps evaluation quick when answer checking is slow.
    """
    from dataclasses import replace

    from deepprune.answers import extract_answer, get_checker
    from deepprune.pairs import TracePair, group_traces

    checker = checker or get_checker()
    excluded = 0
    by_model: dict[str, list[tuple[Any, Any]]] = {}
    for (_, model), members in group_traces(traces).items():
        usable = []
        for t in members:
            answer = t.answer if t.answer is not None else extract_answer(t.text)
            if answer is None or t.finished is False:
                excluded += 1
                continue
            usable.append(t if t.answer is not None else replace(t, answer=answer))
        candidates = by_model.setdefault(str(model), [])
        candidates.extend((usable[i], usable[j]) for i in range(len(usable)) for j in range(i + 1, len(usable)))
    models = sorted(by_model)
    chosen: list[tuple[Any, Any]] = []
    for rank, model in enumerate(models):
        candidates = by_model[model]
        if max_pairs is not None:
            share = max_pairs // len(models) + (1 if rank < max_pairs % len(models) else 0)
            if share < len(candidates):
                keep = sorted(random.Random(f"{seed}-pairs-{model}").sample(range(len(candidates)), share))
                candidates = [candidates[i] for i in keep]
        chosen.extend(candidates)
    pairs = [TracePair(a, b, int(checker.equivalent(a.answer, b.answer))) for a, b in chosen]
    return pairs, excluded


def truncator_from_settings(settings: dict[str, Any], tokenizer: Any = None) -> Callable[[str], str]:
    """A prefix rule from its plain-data form: {"kind": "tokens", "k": 500} or {"kind": "words", "k", "words"}."""
    from deepprune.truncation import DEFAULT_REASONING_WORDS, TokenTruncator, WordTruncator

    kind = settings.get("kind")
    if kind == "words":
        return WordTruncator(int(settings["k"]), settings.get("words") or DEFAULT_REASONING_WORDS)
    if kind == "tokens":
        if tokenizer is None:
            raise ValueError("token truncation needs a tokenizer (the scorer has none)")
        return TokenTruncator(tokenizer, int(settings["k"]))
    if kind in (None, "none"):
        return lambda text: text
    raise ValueError(f"truncation kind must be tokens, words or none, got {kind!r}")


def score_pairs_resumable(
    scorer: PairScorer, items: Sequence[dict[str, Any]], path: str | Path, chunk_size: int = 64
) -> list[dict[str, Any]]:
    """Score `items` ({"i", "a", "b", ...}) and append one JSON line per pair to `path`; returns every record.

    Records already in `path` (a previous, interrupted run of the same evaluation) are reused: a record whose
    identifying fields differ from the item at its index means a different evaluation, and raises.
    """
    done = {}
    for rec in read_jsonl_records(path):
        item = items[rec["i"]] if rec["i"] < len(items) else None
        if item is None or any(rec.get(k) != item.get(k) for k in ("problem_id", "model", "label")):
            raise ValueError(f"{path}: record {rec['i']} does not match this evaluation; use a fresh output dir")
        done[rec["i"]] = rec
    if done:
        log.info("resuming: %d of %d pairs already scored in %s", len(done), len(items), path)
    todo = [it for it in items if it["i"] not in done]
    chunks = [todo[k : k + chunk_size] for k in range(0, len(todo), chunk_size)]
    for chunk in progress(chunks, desc="scoring", total=len(chunks), unit="chunk"):
        scores = scorer.score([(it["a"], it["b"]) for it in chunk])
        for it, score in zip(chunk, scores):
            rec = {k: v for k, v in it.items() if k not in ("a", "b")} | {"score": float(score)}
            append_jsonl(path, rec)
            done[it["i"]] = rec
    return [done[it["i"]] for it in items]
