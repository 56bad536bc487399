"""Generation backends for the online runner: replay (pre-generated traces), hf and vllm (live)."""

from deepprune.online.generators.base import Generator, TraceProgress, TraceState, derive_seed

__all__ = ["Generator", "TraceProgress", "TraceState", "derive_seed"]
