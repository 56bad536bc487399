"""Wall time of greedy clustering and of the judge calls per problem at paper scale (N = 512 and 1,024), simulated.

For each N and problem, N simulated traces (``generator=simulated``: thought-branches' answer distributions when
``../shared`` is there, else a parametric one) generate their 500-token prefixes, then greedy clustering runs with
the paper's Table 6 values (tau 0.5, K = 16, K1 = 20) and a simulated judge of AUROC 0.87. Per problem we time

- ``cluster_ms``: the whole ``greedy_cluster`` call (sampling, batching, bookkeeping and the judge calls);
- ``judge_ms``: the part spent inside ``judge.score`` (the simulated judge: labels and hashed noise), and the
  judge calls (pair judgments) it made;
- ``vote_ms``, the baseline, in the same process on the same traces: cons@N's majority vote over the N final
  answers (answer-equivalence classes, what cons@N itself spends outside generation).

Medians over problems x repeats; ratios clustering / vote and N = 1,024 / N = 512. A real judge's forward passes
(a 4B model on each pair) are what a GPU run pays on top; the clustering logic is what this isolates.

    python benchmarks/sim_scale_wall_time.py [--problems 10] [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepprune.online.clustering import greedy_cluster
from deepprune.online.generators.simulated import SimulatedGenerator
from deepprune.online.simulated_judge import SimulatedJudge
from deepprune.online.voting import majority_vote

THOUGHT_BRANCHES = (
    Path(__file__).resolve().parents[2] / "shared/data/raw/thought-branches/math_cots_summary_qwen14.csv"
)


class TimedJudge:
    """A judge whose ``score`` calls are timed (everything else passes through)."""

    def __init__(self, judge: SimulatedJudge) -> None:
        self.judge = judge
        self.seconds = 0.0

    def attach(self, generator) -> None:
        self.judge.attach(generator)

    def score(self, pairs):
        t = time.perf_counter()
        out = self.judge.score(pairs)
        self.seconds += time.perf_counter() - t
        return out

    def input_tokens(self, pairs) -> int:
        return self.judge.input_tokens(pairs)


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def prefix_token_rule(k: int):
    from deepprune.truncation import TokenPrefix

    return TokenPrefix(k, tokenizer=None)


def make_generator(problems: int) -> tuple[SimulatedGenerator, str]:
    if THOUGHT_BRANCHES.is_file():
        from deepprune.sources.answer_lists import load_answer_lists

        lists = load_answer_lists(THOUGHT_BRANCHES, limit=problems, shuffle_seed=0)
        return SimulatedGenerator(lists), "thought-branches answer lists"
    gen = SimulatedGenerator(None, answers="parametric", p_correct=0.8, num_problems=problems)
    return gen, "parametric answers (p_correct 0.8, 4 wrong answers)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ns", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--auroc", type=float, default=0.87)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    gen, source = make_generator(args.problems)
    rule = prefix_token_rule(500)
    say(f"source: {source}; {args.problems} problems x {args.repeats} repeats; judge AUROC {args.auroc}")
    results: dict[str, dict[str, float]] = {}
    for n in args.ns:
        cluster_ms, judge_ms, vote_ms, calls = [], [], [], []
        for r in range(args.repeats):
            for i, problem in enumerate(gen.problems()):
                states = gen.start(problem, n, seed=1000 * r + i)
                gen.advance(states, until=rule.reached)
                snapshots = [replace(s) for s in states]
                judge = TimedJudge(SimulatedJudge(auroc=args.auroc))
                judge.attach(gen)
                t = time.perf_counter()
                res = greedy_cluster(snapshots, judge, 0.5, 16, 20, np.random.default_rng([r, i]))
                cluster_ms.append((time.perf_counter() - t) * 1e3)
                judge_ms.append(judge.seconds * 1e3)
                calls.append(res.judge_calls)
                answers = [gen.peek_answer(s) for s in states]
                t = time.perf_counter()
                majority_vote(answers)
                vote_ms.append((time.perf_counter() - t) * 1e3)
        med = {
            "cluster_ms": statistics.median(cluster_ms),
            "judge_ms": statistics.median(judge_ms),
            "vote_ms": statistics.median(vote_ms),
            "judge_calls": statistics.median(calls),
        }
        med["cluster_over_vote"] = med["cluster_ms"] / med["vote_ms"]
        med["judge_share"] = med["judge_ms"] / med["cluster_ms"]
        med["us_per_call"] = 1e3 * med["cluster_ms"] / med["judge_calls"]
        results[str(n)] = med

    say()
    say(
        "| N | judge calls / problem | exhaustive pairs | clustering ms / problem | of which judge ms | "
        "cons@N vote ms (baseline) | clustering / vote | us per judge call |"
    )
    say("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, m in results.items():
        k = int(n)
        say(
            f"| {k:,} | {m['judge_calls']:,.0f} | {k * (k - 1) // 2:,} | {m['cluster_ms']:.0f} | "
            f"{m['judge_ms']:.0f} | {m['vote_ms']:.1f} | {m['cluster_over_vote']:.1f} | {m['us_per_call']:.1f} |"
        )
    if len(results) == 2:
        a, b = (results[str(n)] for n in args.ns)
        say()
        say(
            f"N = {args.ns[1]} against N = {args.ns[0]}: clustering x{b['cluster_ms'] / a['cluster_ms']:.2f}, "
            f"judge calls x{b['judge_calls'] / a['judge_calls']:.2f}, vote x{b['vote_ms'] / a['vote_ms']:.2f}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps({"source": source, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
