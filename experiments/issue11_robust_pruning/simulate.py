"""Issue 11: the tau x aggregation x when_full trade-off of a trained judge, simulated over cached judge scores.

The real online runs (run.sh) cost minutes per setting on 2 cores; this script scores every prefix pair of a
problem once with the exported judge (calibrated, as load_scorer serves it, with the judge's own prefix rule),
then replays R seeded arrival orders per problem through the real `greedy_cluster` and aggregation components,
with cons@N on the same orders, and prints accuracy, the paired difference to cons@N and the token reduction
with 95% problem-clustered bootstrap intervals (`deepprune.stats`). It is checked against the real entry: the
default row (tau 0.5, paper rule) gives 0.504 / cons 0.479 / reduction 0.376 here and 0.517 / 0.483 / 0.374
from `python -m deepprune.online` (other arrival orders, same 30 problems).

    python experiments/issue11_robust_pruning/simulate.py cache <export_dir> "GPT-4" scores_gpt4.pkl
    python experiments/issue11_robust_pruning/simulate.py grid scores_gpt4.pkl 8
"""

from __future__ import annotations

import pickle
import sys
import zlib
from dataclasses import replace

import numpy as np

from deepprune.answers import get_checker
from deepprune.online.aggregation import LargestClusterVote, SizeWeightedVote
from deepprune.online.clustering import greedy_cluster
from deepprune.online.generators.base import TraceState
from deepprune.stats import clustered_bootstrap_ci, paired_diff_ci, ratio_reduction_ci

N = 18  # CHAMP traces per (problem, model)


def build_cache(export_dir: str, model: str, out: str, max_problems: int = 30) -> None:
    """Per unseen problem: the judge's N x N prefix-pair scores, tokens, answer classes and correctness."""
    from deepprune.online.generators.replay import ReplayGenerator
    from deepprune.online.judges import exported_judge
    from deepprune.sources.champ import load_champ_traces

    gen = ReplayGenerator(load_champ_traces(models=[model]), shuffle=False)
    judge = exported_judge(export_dir=export_dir, device="cpu", batch_size=64, symmetric=True)
    rule = judge.prefix_rule
    problems = [p for p in gen.problems() if str(p.problem_id) not in judge.seen_problems][:max_problems]
    checker = get_checker()
    data = []
    for p in problems:
        states = gen.start(p, N, 0)
        full = [gen.full_tokens(s) for s in states]
        answers = [gen.peek_answer(s) for s in states]
        gen.advance(states, until=rule.reached)
        snaps = [replace(s, text=rule.judge_text(s)) for s in states]
        judge.prepare(snaps)
        pairs = [(a, b) for a in snaps for b in snaps if a.index != b.index]
        scores = np.zeros((N, N))
        for (a, b), v in zip(pairs, judge.score(pairs)):
            scores[a.index, b.index] = v
        correct = [bool(a is not None and checker.equivalent(a, p.gold)) for a in answers]
        data.append(
            {"pid": p.problem_id, "S": scores, "full": full, "pre": [s.num_tokens for s in states],
             "cls": checker.classes(answers), "correct": correct}
        )  # fmt: skip
    with open(out, "wb") as fh:
        pickle.dump(data, fh)


class _CachedJudge:
    def __init__(self, scores: np.ndarray, perm: np.ndarray) -> None:
        self.scores, self.perm = scores, perm

    def score(self, pairs):
        return np.array([self.scores[self.perm[a.index], self.perm[b.index]] for a, b in pairs])

    def input_tokens(self, pairs) -> int:
        return 0


class _ClassIds:
    """Answers here are answer-class ids (as strings), computed once per problem with the real checker."""

    def classes(self, answers):
        return [None if a is None else int(a) for a in answers]


def _majority(ids: list) -> int | None:
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for pos, c in enumerate(ids):
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
            first.setdefault(c, pos)
    return max(counts, key=lambda c: (counts[c], -first[c])) if counts else None


def simulate(data, tau, agg, orders=8, when_full="prune", k=6, k1=20, oracle=False) -> dict:
    acc, cons, tok, ref = [], [], [], []
    for d in data:
        scores = d["S"]
        if oracle:
            c = d["cls"]
            scores = np.array([[float(c[i] is not None and c[i] == c[j]) for j in range(N)] for i in range(N)])
        row = ([], [], [], [])
        for r in range(orders):
            rng = np.random.default_rng([r, 17, zlib.crc32(d["pid"].encode())])
            perm = rng.permutation(N)
            states = [TraceState(index=i, seed=i) for i in range(N)]
            clustering = greedy_cluster(states, _CachedJudge(scores, perm), tau, k, k1, rng, when_full=when_full)
            selection = agg.select(clustering, N, rng)
            answers = [None if d["cls"][perm[i]] is None else str(d["cls"][perm[i]]) for i in selection.finishers]
            vote = agg.vote(selection, answers, _ClassIds())
            win = None if vote.answer is None else int(vote.answer)
            cons_win = _majority([d["cls"][perm[i]] for i in range(N)])
            ok = [
                w is not None and any(d["correct"][j] for j in range(N) if d["cls"][j] == w) for w in (win, cons_win)
            ]
            used = sum(d["pre"]) + sum(d["full"][perm[i]] - d["pre"][perm[i]] for i in selection.finishers)
            for lst, v in zip(row, (float(ok[0]), float(ok[1]), used, sum(d["full"]))):
                lst.append(v)
        for lst, v in zip((acc, cons, tok, ref), row):
            lst.append(v)
    a, c = np.array(acc), np.array(cons)
    return {
        "acc": clustered_bootstrap_ci(a), "cons": clustered_bootstrap_ci(c), "diff": paired_diff_ci(a, c),
        "red": ratio_reduction_ci(np.array(tok), np.array(ref)),
    }  # fmt: skip


def grid(path: str, orders: int) -> None:
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    print(f"| setting | accuracy [95% CI] | cons@{N} | paired diff [95% CI] | token reduction [95% CI] |")
    print("|---|---|---|---|---|")

    def row(name: str, m: dict) -> None:
        print(f"| {name} | {m['acc']} | {m['cons'].mean:.3f} | {m['diff']} | {m['red']} |", flush=True)

    row("oracle judge, paper rule", simulate(data, 0.5, LargestClusterVote(6, 8), orders, oracle=True))
    for k in (6, 8):
        row(f"no judge: the first {k} arrivals finish (tau 0)", simulate(data, 0.0, LargestClusterVote(k, 8), orders))
    for tau in (0.15, 0.2, 0.2214, 0.25, 0.3, 0.5):
        for when_full in ("prune", "assign"):
            for name, agg in (
                ("largest_cluster", LargestClusterVote(6, 8)),
                ("floor", LargestClusterVote(6, 8, min_finishers=8)),
                ("size_weighted", SizeWeightedVote(2, None, 8)),
            ):
                row(f"tau {tau}, {when_full}, {name}", simulate(data, tau, agg, orders, when_full=when_full))


if __name__ == "__main__":
    if sys.argv[1] == "cache":
        build_cache(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "grid":
        grid(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
