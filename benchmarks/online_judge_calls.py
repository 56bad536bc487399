"""Judge calls and clustering overhead of greedy clustering, on CHAMP replay (and a synthetic N=512 case).

For each problem the prefixes of the replayed traces (one model's 18 solutions per problem, 100-token
prefixes, as ``conf/online.yaml``) are clustered, and we report per problem (medians over problems and repeats):

- judge calls (pair judgments) against the exhaustive N(N-1)/2 pairs;
- clustering overhead in ms: greedy clustering with a judge that returns precomputed scores, i.e. the cost of
  the algorithm itself (sampling, bookkeeping, batching), without the judge model;
- the same with the MiniLM embedding judge (embeddings cached after the first repeat, so repeats time the pair
  scoring; the first pass, which embeds every prefix, is reported apart).
A synthetic problem with the paper's N=512 and Table 6 values (K=16, K1=20) and random scores shows the calls at
paper scale. Run: ``python benchmarks/online_judge_calls.py [--problems 30] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import numpy as np

from deepprune.judge.scorers import EmbeddingScorer
from deepprune.online.clustering import greedy_cluster
from deepprune.online.generators.base import TraceState
from deepprune.online.generators.replay import ReplayGenerator
from deepprune.online.judges import ScorerJudge
from deepprune.sources.champ import load_champ_traces
from deepprune.truncation import TokenPrefix


class MatrixJudge:
    """Precomputed scores indexed by trace index: a judge that costs nothing."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m

    def attach(self, generator) -> None:
        return None

    def score(self, pairs):
        return np.array([self.m[a.index, b.index] for a, b in pairs])

    def input_tokens(self, pairs) -> int:
        return sum(a.num_tokens + b.num_tokens for a, b in pairs)


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def prefix_states(problems: int, prefix_k: int) -> list[list[TraceState]]:
    gen = ReplayGenerator(load_champ_traces(models=["GPT-4"], max_problems=problems))
    out = []
    for i, problem in enumerate(gen.problems()):
        states = gen.start(problem, gen.available(problem.problem_id), seed=i)
        gen.advance(states, until=TokenPrefix(prefix_k, tokenizer=None).reached)
        out.append([replace(s) for s in states])
    return out


def full_matrix(judge: ScorerJudge, states: list[TraceState]) -> np.ndarray:
    n = len(states)
    m = np.zeros((n, n))
    pairs = [(a, b) for a in states for b in states]
    m[:, :] = judge.score(pairs).reshape(n, n)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prefix-k", type=int, default=100)
    ap.add_argument("--taus", type=float, nargs="+", default=[0.5, 0.63, 0.75, 0.9, 0.95])
    args = ap.parse_args()

    t0 = time.perf_counter()
    groups = prefix_states(args.problems, args.prefix_k)
    say(f"loaded {len(groups)} problems x {len(groups[0])} traces in {time.perf_counter() - t0:.1f}s")
    judge = ScorerJudge(EmbeddingScorer)
    first_pass = []
    for states in groups:
        t = time.perf_counter()
        judge.score([(states[0], s) for s in states])  # embeds every prefix once
        first_pass.append((time.perf_counter() - t) * 1e3)
    matrices = [full_matrix(judge, states) for states in groups]
    off_diag = np.concatenate([m[~np.eye(len(m), dtype=bool)] for m in matrices])
    q = np.percentile(off_diag, [5, 25, 50, 75, 95])
    say("MiniLM P(same) over all prefix pairs, percentiles 5/25/50/75/95: " + " / ".join(f"{v:.3f}" for v in q))

    say()
    say(
        "| judge | tau | N | K | K1 | judge calls / problem | exhaustive N(N-1)/2 | share | clusters | "
        "overhead ms (no-cost judge) | ms with MiniLM judge (cached) |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for tau in args.taus:
        calls, clusters, bare_ms, emb_ms = [], [], [], []
        for states, m in zip(groups, matrices):
            cheap = MatrixJudge(m)
            for r in range(args.repeats):
                t = time.perf_counter()
                res = greedy_cluster(states, cheap, tau, 6, 20, np.random.default_rng(r))
                bare_ms.append((time.perf_counter() - t) * 1e3)
                t = time.perf_counter()
                greedy_cluster(states, judge, tau, 6, 20, np.random.default_rng(r))
                emb_ms.append((time.perf_counter() - t) * 1e3)
            calls.append(res.judge_calls)
            clusters.append(len(res.clusters))
        n = len(groups[0])
        say(
            f"| MiniLM | {tau} | {n} | 6 | 20 | {statistics.median(calls):.0f} | {n * (n - 1) // 2} | "
            f"{statistics.median(calls) / (n * (n - 1) / 2):.2f} | {statistics.median(clusters):.0f} | "
            f"{statistics.median(bare_ms):.2f} | {statistics.median(emb_ms):.2f} |"
        )

    # paper scale: N=512, Table 6 values, random scores with a same-answer ratio like the paper's
    rng = np.random.default_rng(0)
    n = 512
    labels = rng.integers(0, 4, n)
    m = np.where(labels[:, None] == labels[None, :], rng.uniform(0.4, 1.0, (n, n)), rng.uniform(0.0, 0.6, (n, n)))
    states = [TraceState(index=i, seed=i, num_tokens=500) for i in range(n)]
    for tau in args.taus:
        calls, clusters, bare_ms = [], [], []
        for r in range(args.repeats):
            t = time.perf_counter()
            res = greedy_cluster(states, MatrixJudge(m), tau, 16, 20, np.random.default_rng(r))
            bare_ms.append((time.perf_counter() - t) * 1e3)
            calls.append(res.judge_calls)
            clusters.append(len(res.clusters))
        say(
            f"| synthetic | {tau} | {n} | 16 | 20 | {statistics.median(calls):.0f} | {n * (n - 1) // 2} | "
            f"{statistics.median(calls) / (n * (n - 1) / 2):.3f} | {statistics.median(clusters):.0f} | "
            f"{statistics.median(bare_ms):.2f} | - |"
        )
    say()
    say(
        f"MiniLM first pass (embedding the {len(groups[0])} prefixes of a problem): "
        f"median {statistics.median(first_pass):.0f} ms per problem"
    )


if __name__ == "__main__":
    main()
