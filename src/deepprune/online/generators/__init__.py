"""Generation backends for the online runner: replay (pre-generated traces), hf and vllm (live), and simulated
(answers and lengths drawn from real answer distributions, for N = 512 on a laptop)."""

from deepprune.online.generators.base import Generator, TraceProgress, TraceState, derive_seed

__all__ = ["Generator", "TraceProgress", "TraceState", "derive_seed"]
