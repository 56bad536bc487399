"""Summarize the judge-family sweep (conf/experiment/issue12_judge_families.yaml) into a Table 1 style table.

    python experiments/issue12_judge_families/summarize.py logs/train/multiruns/<timestamp> [more sweep dirs] \
        --out experiments/issue12_judge_families/results.md

One row per judge family (the `+judge_family` override; a blended family also gives the row of its tuned judge, tested
in the same job), over its seeds: per test source the judge's AUROC, the
untrained reference's on the same pairs and window, and their difference, each as the mean with a 95% Student-t
interval over seeds (`deepprune.stats.seed_interval`); the mean difference over sources; training wall time
(median) and optimizer steps. A job without metrics.json (still running, or failed) is listed as missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from deepprune.stats import seed_interval


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    return dict(o.lstrip("+").split("=", 1) for o in items or [] if "=" in o)


def collect(sweep_dirs: list[Path]) -> tuple[dict[str, list[dict]], list[str]]:
    """Metrics of every finished job by family, and the jobs that have none."""
    runs: dict[str, list[dict]] = defaultdict(list)
    missing = []
    for sweep in sweep_dirs:
        for job in sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
            over = _overrides(job)
            family = over.get("judge_family", "default")
            metrics = job / "metrics.json"
            if not metrics.is_file():
                missing.append(f"{family} seed {over.get('seed', '?')} ({job})")
                continue
            m = json.loads(metrics.read_text())
            m["_seed"], m["_job"] = over.get("seed"), str(job)
            runs[family].append(m)
            tuned = (m.get("blend") or {}).get("tuned_test")
            if tuned:  # a blended run also tested the tuned judge (alpha 1) on the same pairs: its own row
                row = {**m, **tuned, "blend": None}
                runs[family.removesuffix("_blend") + " (tuned, alpha 1)"].append(row)
    return runs, missing


def _sources(runs: dict[str, list[dict]]) -> list[str]:
    keys = {k.split("/", 2)[2] for ms in runs.values() for m in ms for k in m if k.startswith("test/auroc/")}
    return sorted(keys)


def _ci(values: list[float]) -> str:
    return str(seed_interval(values)) if values else "-"


def table(runs: dict[str, list[dict]]) -> str:
    sources = _sources(runs)
    head = ["family", "seeds"]
    for s in sources:
        head += [f"{s} judge", f"{s} reference", f"{s} diff"]
    head += ["mean diff", "job wall s (median)", "steps (median)", "blend alpha"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family, ms in runs.items():
        row = [family, ",".join(str(m["_seed"]) for m in ms)]
        mean_diffs = []
        for m in ms:
            d = [m[f"test/auroc/{s}"] - m[f"test/auroc_reference/{s}"] for s in sources if f"test/auroc/{s}" in m]
            mean_diffs.append(sum(d) / len(d))
        for s in sources:
            judge = [m[f"test/auroc/{s}"] for m in ms if f"test/auroc/{s}" in m]
            ref = [m[f"test/auroc_reference/{s}"] for m in ms if f"test/auroc_reference/{s}" in m]
            diff = [j - r for j, r in zip(judge, ref)]
            row += [_ci(judge), _ci(ref), _ci(diff)]
        alphas = [str(m["blend"]["alpha"]) for m in ms if m.get("blend")]
        row += [
            _ci(mean_diffs),
            f"{statistics.median(m['wall_time_s'] for m in ms):.0f}",
            f"{statistics.median(m['global_steps'] for m in ms):.0f}",
            ",".join(alphas) or "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs, missing = collect(args.sweep_dirs)
    text = table(runs)
    if missing:
        text += "\n\nMissing (no metrics.json): " + "; ".join(missing)
    print(text)  # noqa: T201
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
