"""Summarize the judge-family sweep (conf/experiment/issue12_judge_families.yaml) into a Table 1 style table.

    python experiments/issue12_judge_families/summarize.py logs/train/multiruns/<timestamp> [more sweep dirs] \
        --out experiments/issue12_judge_families/results.md

One row per judge family (the `+judge_family` override; for run dirs of `default_seeds.sh`, given as
`<variant>/seed<n>/`, the variant; a blended family also gives the row of its tuned judge, tested
in the same job), over its seeds: per test source the judge's AUROC, the
untrained reference's on the same pairs and window, and their difference, each as the mean with a 95% Student-t
interval over seeds (`deepprune.stats.seed_interval`); the mean difference over sources; the CPU seconds fit used
(the budget, `fit_cpu_s`), the wall time of fit and of the whole job (test and blend passes included) and the
optimizer steps (medians). Jobs run before metrics.json had `fit_wall_s` get it from their train.log (from the
Trainer's first line to the test pass's checkpoint restore). A job without train's final metrics.json (still
running, or failed) is listed as missing. ``--paired-to <family>`` adds each family's judge AUROC minus that family's
at the same seed; ``--folds default:swap:qwen25_math`` a 2-fold cross-fit of a held-out source (`fold_table`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from deepprune.stats import seed_interval


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    return dict(o.lstrip("+").split("=", 1) for o in items or [] if "=" in o)


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def fit_wall_from_log(log: Path) -> float | None:
    """Seconds from the Trainer's first log line ("GPU available") to the test pass's checkpoint restore."""
    from datetime import datetime

    start = end = None
    for line in log.read_text().splitlines() if log.is_file() else []:
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        if start is None and "GPU available" in line:
            start = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        elif start is not None and "Restoring states from the checkpoint path" in line:
            end = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
            break
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


def collect(sweep_dirs: list[Path]) -> tuple[dict[str, list[dict]], list[str]]:
    """Metrics of every finished job by family, and the jobs that have none."""
    runs: dict[str, list[dict]] = defaultdict(list)
    missing = []
    for sweep in sweep_dirs:
        single = (sweep / ".hydra").is_dir()  # a run dir (default_seeds.sh: <variant>/seed<n>), not a sweep's
        for job in [sweep] if single else sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
            over = _overrides(job)
            family = over.get("judge_family", sweep.parent.name if single else "default")
            metrics = job / "metrics.json"
            m = json.loads(metrics.read_text()) if metrics.is_file() else {}
            if "wall_time_s" not in m:  # the test pass writes metrics.json before train's final one
                missing.append(f"{family} seed {over.get('seed', '?')} ({job})")
                continue
            m["_seed"], m["_job"] = over.get("seed"), str(job)
            if m.get("fit_wall_s") is None:
                m["fit_wall_s"] = fit_wall_from_log(job / "train.log")
            runs[family].append(m)
            tuned = (m.get("blend") or {}).get("tuned_test")
            if tuned:  # a blended run also tested the tuned judge (alpha 1) on the same pairs: its own row
                row = {**m, **tuned, "blend": None, "per_source": None}  # its per-model AUROCs are not kept
                runs[family.removesuffix("_blend") + " (tuned, alpha 1)"].append(row)
    return runs, missing


def _sources(runs: dict[str, list[dict]]) -> list[str]:
    keys = {k.split("/", 2)[2] for ms in runs.values() for m in ms for k in m if k.startswith("test/auroc/")}
    return sorted(keys)


def source_diffs(m: dict) -> dict[str, float]:
    """Judge - reference test AUROC per test source (the flat ``test/auroc/<source>`` keys)."""
    prefix = "test/auroc/"
    return {k[len(prefix) :]: v - m[f"test/auroc_reference/{k[len(prefix) :]}"] for k, v in m.items()
            if k.startswith(prefix) and f"test/auroc_reference/{k[len(prefix) :]}" in m}  # fmt: skip


def set_diffs(m: dict) -> dict[str, float]:
    """Judge - reference test AUROC on every test source and, for a source with several models (CHAMP's held-out
    GPT-4 and GPT-4 Turbo), on each of its models (sources only where the run kept no per-model metrics)."""
    if not m.get("per_source"):
        return source_diffs(m)
    out = {}
    for source, r in m["per_source"].items():
        if r.get("auroc_reference") is None:
            continue
        out[source] = r["auroc"] - r["auroc_reference"]
        models = r.get("models") or {}
        for model, rm in models.items() if len(models) > 1 else ():
            out[f"{source}/{model}"] = rm["auroc"] - rm["auroc_reference"]
    return out


def _ci(values: list[float]) -> str:
    return str(seed_interval(values)) if values else "-"


def _median(ms: list[dict], key: str) -> str:
    values = [m[key] for m in ms if m.get(key) is not None]
    return f"{statistics.median(values):.0f}" if values else "-"


def table(runs: dict[str, list[dict]]) -> str:
    sources = _sources(runs)
    head = ["family", "seeds"]
    for s in sources:
        head += [f"{s} judge", f"{s} reference", f"{s} diff"]
    head += ["mean diff", "sets below reference", "fit CPU s", "fit wall s", "job wall s", "steps", "blend alpha"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family, ms in runs.items():
        row = [family, ",".join(str(m["_seed"]) for m in ms)]
        mean_diffs = [statistics.fmean(source_diffs(m).values()) for m in ms]
        for s in sources:
            judge = [m[f"test/auroc/{s}"] for m in ms if f"test/auroc/{s}" in m]
            ref = [m[f"test/auroc_reference/{s}"] for m in ms if f"test/auroc_reference/{s}" in m]
            diff = [j - r for j, r in zip(judge, ref)]
            row += [_ci(judge), _ci(ref), _ci(diff)]
        alphas = [str(m["blend"]["alpha"]) for m in ms if m.get("blend")]
        below = [sum(d < 0 for d in set_diffs(m).values()) for m in ms]
        row += [
            _ci(mean_diffs),
            ",".join(map(str, below)),
            _median(ms, "fit_cpu_s"),
            _median(ms, "fit_wall_s"),
            _median(ms, "wall_time_s"),
            _median(ms, "global_steps"),
            ",".join(alphas) or "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paired_table(runs: dict[str, list[dict]], baseline: str) -> str:
    """Judge AUROC of each family minus the baseline family's at the same seed (same splits, same test pairs), per
    source: the reference does not enter, so these compare training recipes with the split's own noise paired
    away. Only seeds both have."""
    base = {m["_seed"]: m for m in runs.get(baseline, [])}
    sources = _sources(runs)
    head = ["family", f"seeds (with {baseline})", *[f"{s} judge - {baseline}" for s in sources], "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family, ms in runs.items():
        pairs = [(m, base[m["_seed"]]) for m in ms if m["_seed"] in base and family != baseline]
        if not pairs:
            continue
        row = [family, ",".join(str(m["_seed"]) for m, _ in pairs)]
        means = []
        for s in sources:
            d = [m[f"test/auroc/{s}"] - b[f"test/auroc/{s}"] for m, b in pairs]
            row.append(_ci(d))
        for m, b in pairs:
            means.append(sum(m[f"test/auroc/{s}"] - b[f"test/auroc/{s}"] for s in sources) / len(sources))
        row.append(_ci(means))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fold_table(runs: dict[str, list[dict]], first: str, second: str, source: str) -> str:
    """A 2-fold cross-fit of one held-out source: at each seed both families (the second with the source's
    ``swap_sides``) test on complementary halves; per seed their judge - reference differences and the mean of the
    two, which measures the recipe on every problem of the source; then the mean over seeds."""
    a = {m["_seed"]: m for m in runs.get(first, [])}
    b = {m["_seed"]: m for m in runs.get(second, [])}
    key, ref = f"test/auroc/{source}", f"test/auroc_reference/{source}"
    head = ["seed", f"{source}: {first}", second, "cross-fit (mean of the two)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    both = []
    for seed in sorted(set(a) & set(b), key=str):
        da, db = a[seed][key] - a[seed][ref], b[seed][key] - b[seed][ref]
        both.append((da + db) / 2)
        lines.append(f"| {seed} | {da:+.3f} | {db:+.3f} | {both[-1]:+.3f} |")
    if both:
        lines.append(f"| mean [95% CI over seeds] | | | {_ci(both)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--paired-to", default=None, help="also a table of judge AUROC minus this family's, by seed")
    parser.add_argument(
        "--folds", default=None, metavar="FIRST:SECOND:SOURCE", help="also a 2-fold cross-fit table of SOURCE"
    )
    args = parser.parse_args()
    runs, missing = collect(args.sweep_dirs)
    text = table(runs)
    if args.paired_to:
        text += "\n\n" + paired_table(runs, args.paired_to)
    if args.folds:
        first, second, source = args.folds.split(":")
        text += "\n\n" + fold_table(runs, first, second, source)
    if missing:
        text += "\n\nMissing (not finished): " + "; ".join(missing)
    print(text)  # noqa: T201
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
