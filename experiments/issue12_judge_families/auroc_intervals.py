"""95% intervals for a train run's per-source test AUROC, the reference's, and their paired difference.

    python experiments/issue12_judge_families/auroc_intervals.py <train run dir> [--mixed] [overrides of that run ...]

The run's `scores.jsonl` holds one line per test pair (judge and reference score, label, and since runs of
2026-12-02 the pair's source and problem). For an older run, whose lines have no problem id, the test pairs are
rebuilt from the same config (`PairDataModule.prepare_pairs`: no model is loaded, the pair labels come from the
label cache; pass the run's overrides) to learn each pair's source and problem. Pairs of one problem are not
independent, so the intervals resample problems (`deepprune.judge.metrics.auroc_intervals`: 2000 draws, seed 0;
the same as train's `auroc_*_ci` in metrics.json) and take both AUROCs and their difference on the same drawn pairs.
Rows: each source, and each generating model of a source that has several. ``--mixed`` adds, per source, the
problems whose test pairs hold both classes: how the different-answer pairs of each of them rank against all of
the source's same-answer pairs (the share of those comparisons judge and reference get right). A pooled AUROC is
mostly such cross-problem comparisons, so on a source with few of these problems (Qwen2.5-Math: 2 or so per side)
it says which ones carry it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepprune.judge.metrics import auroc_intervals, rank_auroc


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
            out.append((str(pid), int(diff.sum()), rank_auroc(s[keep], y[keep]), rank_auroc(ref[keep], y[keep])))
    return out


def rebuilt_rows(scores: list[dict], run: Path, overrides: list[str]) -> list[dict]:
    """Source and problem of each line of an older run's scores.jsonl, from its test split rebuilt."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    dm = instantiate(cfg.data, truncation=instantiate(cfg.truncation), sampler=instantiate(cfg.sampler))
    dm.prepare_pairs()
    pairs = dm._pairs["test"]  # (source, pair) in the order the test features (and scores.jsonl) have
    if len(scores) != len(pairs):
        raise ValueError(f"{run}/scores.jsonl has {len(scores)} pairs, the rebuilt test split {len(pairs)}")
    rows = []
    for r, (source, p) in zip(scores, pairs):
        if r["label"] != p.label or r["model"] != str(p.a.model):
            raise ValueError(f"pair {r['i']}: scores.jsonl and the rebuilt split disagree (other config or seed?)")
        rows.append({**r, "source": source, "problem": f"{source}/{p.a.problem_id}"})
    return rows


def main() -> None:
    run = Path(sys.argv[1])
    mixed = "--mixed" in sys.argv[2:]
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    if all(r.get("problem_id") is not None and r.get("source") is not None for r in scores):
        rows = [{**r, "problem": f"{r['source']}/{r['problem_id']}"} for r in scores]
    else:
        rows = rebuilt_rows(scores, run, [a for a in sys.argv[2:] if a != "--mixed"])
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
        ci = auroc_intervals(
            [r["score"] for r in part], [r["label"] for r in part], [r["problem"] for r in part],
            reference=[r["score_reference"] for r in part],
        )  # fmt: skip
        cells = [f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]" for i in (ci[k] for k in ci)]
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
