"""Online judge cost of the siamese judge: per-text embedding cache (SiameseScorer) against the pair forward.

For CHAMP problems replayed as ``conf/online.yaml`` does (GPT-4's 18 solutions, 100-token prefixes), every pair
among a problem's prefixes is scored, as exhaustive clustering would, two ways with the same weights:

- baseline: ``HeadScorer`` (each pair tokenized as one sequence, both orders averaged, which is how
  ``judge=exported`` read a siamese export before it knew the judge is order-invariant);
- ``SiameseScorer``: each prefix embedded once, pairs scored from the two embeddings, one order.

Prints seconds per problem (median over problems and repeats), the ratio, and the largest score difference
between the two paths. The judge is the untrained siamese all-MiniLM-L6-v2 head (the default judge before
fine-tuning: the same architecture and cost as a trained export), or ``--export DIR`` for a trained one.
Run: ``python benchmarks/siamese_judge_scoring.py [--problems 5] [--repeats 3] [--export DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from itertools import combinations

import numpy as np
from online_judge_calls import prefix_states  # the sibling benchmark's CHAMP replay prefixes

from deepprune.judge.scorers import HeadScorer, SiameseScorer


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefix-tokens", type=int, default=100)
    parser.add_argument("--export", default=None, help="a siamese judge export (default: untrained MiniLM head)")
    args = parser.parse_args()
    if args.export:
        from deepprune.judge.export import load_head

        head = load_head(args.export)
    else:
        from deepprune.assets import minilm_dir
        from deepprune.judge.siamese import siamese_head

        head = siamese_head(minilm_dir(), finetune="frozen").eval()
    prefixes = [[s.text for s in states] for states in prefix_states(args.problems, args.prefix_tokens)]
    pair_times, cached_times, worst = [], [], 0.0
    for _ in range(args.repeats):
        for texts in prefixes:
            pairs = list(combinations(texts, 2))
            started = time.perf_counter()
            both = HeadScorer(head, batch_size=8).score(pairs + [(b, a) for a, b in pairs])
            baseline = (both[: len(pairs)] + both[len(pairs) :]) / 2
            pair_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            cached = SiameseScorer(head, batch_size=32).score(pairs)  # a fresh cache: every prefix embedded
            cached_times.append(time.perf_counter() - started)
            worst = max(worst, float(np.abs(cached - baseline).max()))
    n = len(prefixes[0])
    say(f"{len(prefixes)} problems x {args.repeats} repeats, {n} prefixes ({n * (n - 1) // 2} pairs) per problem")
    base, fast = statistics.median(pair_times), statistics.median(cached_times)
    say(f"pair forward, both orders (baseline): {base:.2f} s per problem (median)")
    say(f"SiameseScorer, embeddings cached:      {fast:.3f} s per problem (median)")
    say(f"ratio (cached / baseline): {fast / base:.3f}; max |score difference| {worst:.2e}")


if __name__ == "__main__":
    main()
