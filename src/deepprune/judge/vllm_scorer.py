"""The trained generative judge served by vLLM: base model + LoRARequest for adapter exports (a PairScorer).

Built by the one loader, ``deepprune.judge.scorers.load_scorer(export_dir, backend="vllm")``.

Reads an export folder written by :func:`deepprune.judge.export.export_head` (``deepprune_judge.json`` holds
the base model, the prompt and the label words and token ids). Each pair is encoded exactly as the HF head
encodes it (the same :class:`~deepprune.judge.heads.GenerativeHead` ``encode``, so chat template and the
``max_length`` clipping agree), sent as one ``max_tokens=1`` request, and scored as

    P(same) = softmax(logprob(different word), logprob(same word))[1]

Why ``SamplingParams(logprob_token_ids=[different, same])``: it returns the raw (untempered) log-probabilities
of exactly the two label tokens whatever their rank, so the score is the softmax over the two label logits at
the answer position, the same number the HF head computes. ``logprobs=k`` only returns the top-k (a label token
outside it would be missing, and a fallback would bias scores), ``allowed_token_ids`` changes the processed
distribution but not the raw logprobs, and prompt logprobs need one request per label.

    scorer = load_scorer("outputs/judge_export", backend="vllm", engine=EngineSettings(max_model_len=2048))
    scorer.score([("prefix of trace a", "prefix of trace b")])   # -> array([P(same)])
    scorer.close()

In the online runner, ``judge=vllm judge.export_dir=...`` wraps it in the same
:class:`~deepprune.online.judges.ScorerJudge` as the HF-backed ``judge=exported`` (both pair orders, the same
accounting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepprune.judge.export import JUDGE_FILE, head_from_record, read_judge_record, recorded_rule
from deepprune.runtime import get_logger
from deepprune.vllm_engine import EngineSettings

log = get_logger(__name__)


def read_export(export_dir: str | Path) -> dict[str, Any]:
    """The export record, checked for what vLLM serving needs (a generative judge with label token ids)."""
    record = read_judge_record(export_dir)
    path = Path(export_dir) / JUDGE_FILE
    if record.get("kind") != "generative":
        raise ValueError(
            f"{path}: kind={record.get('kind')!r}; the vLLM judge serves generative judges "
            "(score classifier exports with deepprune.judge.scorers.load_scorer)"
        )
    for key in ("label_token_ids", "prompt"):
        if key not in record:
            raise ValueError(f"{path}: missing key {key!r}")
    if record.get("adapter") and not record.get("base_model"):
        raise ValueError(f"{path}: an adapter export must name its base_model")
    return record


def two_way_softmax(logprob_different: float, logprob_same: float) -> float:
    """P(same) from the two label log-probabilities (stable for any magnitudes, -inf included)."""
    if logprob_same == logprob_different:
        return 0.5
    return 1.0 / (1.0 + math.exp(min(logprob_different - logprob_same, 700.0)))


class VLLMJudgeScorer:
    """P(same) for trace-prefix pairs from an exported generative judge running on vLLM (sync ``LLM``)."""

    def __init__(self, export_dir: str | Path, engine: EngineSettings | None = None, max_lora_rank: int = 64) -> None:
        self.export_dir = Path(export_dir).resolve()
        record = read_export(self.export_dir)
        engine = engine if engine is not None else EngineSettings(gpu_memory_utilization=0.3)
        engine.apply_env()
        from vllm import LLM

        from deepprune.judge.backbone import load_tokenizer

        self.record = record
        self.adapter = bool(record.get("adapter"))
        self.label_ids = (int(record["label_token_ids"]["different"]), int(record["label_token_ids"]["same"]))
        # a weightless head: only its tokenizer, prompt and clipping are used, to encode pairs as the HF head does
        self.encoder = head_from_record(self.export_dir, record, _identity(), load_tokenizer(self.export_dir))
        self.tokenizer = self.encoder.tokenizer
        self.prefix_rule = recorded_rule(record, self.tokenizer)
        model = record["base_model"] if self.adapter else str(self.export_dir)
        lora = dict(enable_lora=True, max_loras=1, max_lora_rank=max_lora_rank) if self.adapter else {}
        # the export's tokenizer is the one the judge was trained with
        self.llm: Any = LLM(**engine.kwargs(str(model), str(self.export_dir), **lora))
        self.lora_request = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("deepprune-judge", 1, str(self.export_dir))
        self.calls = 0
        self.input_tokens = 0

    def encode(self, a: str, b: str) -> list[int]:
        """Prompt token ids for one pair, identical to the HF head's encoding."""
        return self.encoder.encode(a, b)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(same answer) per pair, in [0, 1]."""
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        if self.llm is None:
            raise RuntimeError("VLLMJudgeScorer is closed")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self.encode(a, b)) for a, b in pairs]
        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(self.label_ids))
        outputs = self.llm.generate(prompts, params, lora_request=self.lora_request, use_tqdm=False)
        scores = np.empty(len(pairs), dtype=np.float64)
        for i, out in enumerate(outputs):
            position = out.outputs[0].logprobs[0]
            diff, same = (position[t].logprob for t in self.label_ids)
            scores[i] = two_way_softmax(diff, same)
        self.calls += len(pairs)
        self.input_tokens += sum(len(p["prompt_token_ids"]) for p in prompts)
        return scores

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(llm, "shutdown", None)
            if shutdown is not None:
                shutdown()
            import multiprocessing

            multiprocessing.active_children()  # reap an exited engine process

    def __enter__(self) -> VLLMJudgeScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _identity() -> Any:
    import torch

    return torch.nn.Identity()
