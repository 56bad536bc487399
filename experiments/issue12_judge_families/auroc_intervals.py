"""95% intervals for a train run's per-source test AUROC, the reference's, and their paired difference.

    python experiments/issue12_judge_families/auroc_intervals.py <train run dir> [--mixed] [overrides of that run ...]

The run's `scores.jsonl` holds one line per test pair (judge and reference score, label) in the data module's order
but no problem id, so the test pairs are rebuilt from the same config (`PairDataModule.prepare_pairs`: no model is
loaded, the pair labels come from the label cache) to learn each pair's source and problem. Pairs of one problem
are not independent, so the bootstrap resamples problems (with replacement, 2000 times, seed 0) and recomputes both
AUROCs and their difference on the same drawn pairs. Rows: each source, and each generating model of a source that
has several. ``--mixed`` adds, per source, the problems whose test pairs hold both classes: how the different-answer
pairs of each of them rank against all of the source's same-answer pairs (the share of those comparisons judge and
reference get right). A pooled AUROC is mostly such cross-problem comparisons, so on a source with few of these
problems (Qwen2.5-Math: 2 or so per side) it says which ones carry it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank (Mann-Whitney) AUROC, ties counted half; NaN when a class is missing."""
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def problem_bootstrap(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """(point, low, high) of the judge's AUROC, the reference's and judge - reference, resampling problems."""
    by_problem: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_problem[r["problem"]].append(i)
    groups = list(by_problem.values())
    s = np.array([r["score"] for r in rows])
    ref = np.array([r["score_reference"] for r in rows])
    y = np.array([r["label"] for r in rows])
    rng = np.random.default_rng(seed)
    draws = {"judge": [], "reference": [], "diff": []}
    for _ in range(n_boot):
        idx = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        a, b = auroc(s[idx], y[idx]), auroc(ref[idx], y[idx])
        if a == a and b == b:  # a resample with one class has no AUROC
            draws["judge"].append(a)
            draws["reference"].append(b)
            draws["diff"].append(a - b)
    point = {"judge": auroc(s, y), "reference": auroc(ref, y)}
    point["diff"] = point["judge"] - point["reference"]
    return {k: (point[k], *np.quantile(v, [0.025, 0.975])) for k, v in draws.items()}


def mixed_problem_rows(rows: list[dict]) -> list[tuple[str, int, float, float]]:
    """(problem, different pairs, judge, reference) for each problem with both classes: the share of
    (same-answer pair of any problem, different-answer pair of this one) comparisons ranked right, ties half."""
    s = np.array([r["score"] for r in rows])
    ref = np.array([r["score_reference"] for r in rows])
    y = np.array([r["label"] for r in rows])
    problem = np.array([r["problem"] for r in rows])
    out = []
    for pid in sorted(set(problem)):
        diff = (problem == pid) & (y == 0)
        if diff.any() and ((problem == pid) & (y == 1)).any():
            keep = diff | (y == 1)  # this problem's different-answer pairs against every same-answer pair
            out.append((str(pid), int(diff.sum()), auroc(s[keep], y[keep]), auroc(ref[keep], y[keep])))
    return out


def main() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    run = Path(sys.argv[1])
    mixed = "--mixed" in sys.argv[2:]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[a for a in sys.argv[2:] if a != "--mixed"])
    dm = instantiate(cfg.data, truncation=instantiate(cfg.truncation), sampler=instantiate(cfg.sampler))
    dm.prepare_pairs()
    pairs = dm._pairs["test"]  # (source, pair) in the order the test features (and scores.jsonl) have
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    if len(scores) != len(pairs):
        raise ValueError(f"{run}/scores.jsonl has {len(scores)} pairs, the rebuilt test split {len(pairs)}")
    rows = []
    for r, (source, p) in zip(scores, pairs):
        if r["label"] != p.label or r["model"] != str(p.a.model):
            raise ValueError(f"pair {r['i']}: scores.jsonl and the rebuilt split disagree (other config or seed?)")
        rows.append({**r, "source": source, "problem": f"{source}/{p.a.problem_id}"})
    print("| set | problems | pairs (different) | judge AUROC | reference AUROC | judge - reference |")  # noqa: T201
    print("|---|---:|---:|---|---|---|")  # noqa: T201
    sets: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        sets[r["source"]].append(r)
    for source in sorted({r["source"] for r in rows}):
        models = sorted({r["model"] for r in sets[source]})
        if len(models) > 1:
            for m in models:
                sets[f"{source} / {m}"] = [r for r in sets[source] if r["model"] == m]
    for name in sorted(sets):
        part = sets[name]
        ci = problem_bootstrap(part)
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in (ci["judge"], ci["reference"], ci["diff"])]
        problems = len({r["problem"] for r in part})
        different = sum(1 - r["label"] for r in part)
        print(f"| {name} | {problems} | {len(part)} ({different}) | " + " | ".join(cells) + " |")  # noqa: T201
    if mixed:
        print("\n| problem (both classes) | different pairs | judge: ranked below the same pairs | reference |")  # noqa: T201
        print("|---|---:|---:|---:|")  # noqa: T201
        for source in sorted({r["source"] for r in rows}):
            for pid, n, judge, reference in mixed_problem_rows(sets[source]):
                print(f"| {pid} | {n} | {judge:.3f} | {reference:.3f} |")  # noqa: T201


if __name__ == "__main__":
    main()
