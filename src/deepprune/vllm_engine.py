"""vLLM engine settings: one object for every engine deepprune starts (the generator's AsyncLLM, the judge's LLM).

``conf/generator/vllm.yaml`` and ``conf/judge/vllm.yaml`` both have an ``engine:`` block that instantiates
:class:`EngineSettings`; the backend adds what only it knows (the model, its tokenizer, LoRA for an adapter judge)
through :meth:`EngineSettings.kwargs`. Nothing here imports vLLM, so configs compose and validate on any machine.

    engine = EngineSettings(dtype="bfloat16", max_model_len=65536, tensor_parallel_size=2)
    LLM(**engine.kwargs(model="deepseek-ai/DeepSeek-R1-0528-Qwen3-8B"))

When a generator and a judge share a GPU, split ``gpu_memory_utilization`` between their two ``engine`` blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EngineSettings"]


@dataclass
class EngineSettings:
    """Keyword arguments of a vLLM engine, as configured.

    ``enable_prefix_caching`` and ``max_num_seqs`` set to None leave vLLM's defaults. ``cpu_kvcache_space_gb`` (CPU
    build only) sets ``VLLM_CPU_KVCACHE_SPACE`` when that variable is unset. ``extra``: any other engine argument
    (for example ``{quantization: fp8}``), applied last.
    """

    dtype: str = "auto"
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool | None = None
    seed: int = 0
    enforce_eager: bool = True
    max_num_seqs: int | None = None
    cpu_kvcache_space_gb: int | None = None
    extra: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if int(self.max_model_len) < 1:
            raise ValueError(f"engine.max_model_len must be >= 1, got {self.max_model_len}")
        if int(self.tensor_parallel_size) < 1:
            raise ValueError(f"engine.tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0.0 < float(self.gpu_memory_utilization) <= 1.0:
            raise ValueError(f"engine.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        self.extra = dict(self.extra or {})

    def apply_env(self) -> None:
        """Environment the engine reads at start-up (before vLLM is imported)."""
        if self.cpu_kvcache_space_gb is not None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.cpu_kvcache_space_gb))

    def kwargs(self, model: str, tokenizer: str | None = None, **backend: Any) -> dict[str, Any]:
        """Engine keyword arguments for ``model``: these settings, then the backend's own (``backend``), then
        ``extra``."""
        out: dict[str, Any] = dict(
            model=str(model),
            tokenizer=str(tokenizer or model),
            dtype=self.dtype,
            max_model_len=int(self.max_model_len),
            tensor_parallel_size=int(self.tensor_parallel_size),
            gpu_memory_utilization=float(self.gpu_memory_utilization),
            seed=int(self.seed),
            enforce_eager=bool(self.enforce_eager),
            disable_log_stats=True,
        )
        if self.enable_prefix_caching is not None:
            out["enable_prefix_caching"] = bool(self.enable_prefix_caching)
        if self.max_num_seqs is not None:
            out["max_num_seqs"] = int(self.max_num_seqs)
        out.update(backend)
        out.update(self.extra or {})
        return out
