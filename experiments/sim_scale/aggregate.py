"""Tables and plots of experiments/sim_scale from its sweep directories, with intervals over problems and orders.

Every job of the sweeps (``python -m deepprune.online experiment=sim_scale ...``) wrote one record per problem
(``results.jsonl``: DeepPrune and, as its ``reference``, cons@512 on the same simulated traces). Jobs whose
overrides differ only in ``seed`` (the arrival order) form one setting; per setting the outcomes become
[problems x orders] matrices, and every interval is ``deepprune.stats``' problem-clustered bootstrap (95%):
accuracy of each arm, the paired accuracy difference, and the token reduction as a ratio of totals.

    python experiments/sim_scale/aggregate.py logs/sim_scale --out experiments/sim_scale

Writes ``results.csv`` (one row per setting), ``tables.md`` (the Markdown tables of results.md),
``sim_auroc.png`` (accuracy and token reduction against judge AUROC), ``sim_tradeoffs.png`` (tau and K2) and
``versions.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deepprune.online.simulated_judge import separation_for_auroc
from deepprune.reporting import package_versions, parse_overrides
from deepprune.stats import Interval, clustered_bootstrap_ci, paired_diff_ci, ratio_reduction_ci
from deepprune.tables import Table, to_markdown, write_csv

IGNORED = ("seed", "experiment", "hydra.*")
COLUMNS = [
    "sweep",
    "setting",
    "orders",
    "problems",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "cons_accuracy",
    "cons_low",
    "cons_high",
    "diff",
    "diff_low",
    "diff_high",
    "token_reduction",
    "reduction_low",
    "reduction_high",
    "tokens_mean",
    "cons_tokens_mean",
    "judge_calls_mean",
    "judge_input_tokens_mean",
    "clusters_mean",
    "k3_share",
    "pass_at_k",
]


def load_jobs(root: Path) -> dict[tuple[str, str], dict[int, dict[str, dict[str, Any]]]]:
    """{(sweep, setting): {seed: {problem_id: record}}} for every job under ``root``/<sweep>/<job>."""
    out: dict[tuple[str, str], dict[int, dict[str, dict[str, Any]]]] = defaultdict(dict)
    for results in sorted(root.glob("*/*/results.jsonl")):
        job = results.parent
        lines = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        overrides = parse_overrides(lines, ignore=IGNORED)
        seed = int(parse_overrides(lines).get("seed", 0))
        setting = " ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "default"
        with results.open(encoding="utf-8") as fh:
            recs = {r["problem_id"]: r for r in map(json.loads, filter(str.strip, fh))}
        out[(job.parent.name, setting)][seed] = recs
    return out


def summarize(by_seed: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """One setting's row: intervals from [problems x orders] matrices over the problems every order ran."""
    seeds = sorted(by_seed)
    problems = sorted(set.intersection(*(set(by_seed[s]) for s in seeds)))

    def matrix(get) -> np.ndarray:
        return np.array([[float(get(by_seed[s][p])) for s in seeds] for p in problems])

    acc = matrix(lambda r: r["correct"])
    tokens = matrix(lambda r: r["tokens"])
    row: dict[str, Any] = {"orders": len(seeds), "problems": len(problems)}
    intervals: dict[str, Interval] = {"accuracy": clustered_bootstrap_ci(acc)}
    has_reference = all(by_seed[s][p].get("reference") for s in seeds for p in problems)
    if has_reference:  # a run with reference=null (a plain cons@n baseline) has no cons@512 columns
        cons = matrix(lambda r: r["reference"]["correct"])
        ref_tokens = matrix(lambda r: r["reference"]["tokens"])
        intervals["cons"] = clustered_bootstrap_ci(cons)
        intervals["diff"] = paired_diff_ci(acc, cons)
        intervals["reduction"] = ratio_reduction_ci(tokens, ref_tokens)
        row["cons_tokens_mean"] = float(ref_tokens.mean())
    for name, iv in intervals.items():
        point = {"cons": "cons_accuracy", "reduction": "token_reduction"}.get(name, name)
        row[point], row[f"{name}_low"], row[f"{name}_high"] = iv.mean, iv.low, iv.high
    row["tokens_mean"] = float(tokens.mean())
    row["judge_calls_mean"] = float(matrix(lambda r: r["judge_calls"]).mean())
    row["judge_input_tokens_mean"] = float(matrix(lambda r: r["judge_input_tokens"]).mean())
    if all(by_seed[s][p].get("num_clusters") is not None for s in seeds for p in problems):
        row["clusters_mean"] = float(matrix(lambda r: r["num_clusters"]).mean())
        row["k3_share"] = float(matrix(lambda r: r["extra"].get("finish_rule") == "k3").mean())
        row["pass_at_k"] = float(matrix(lambda r: r["pass_at_k"]).mean())
    return row


def effective_auroc(auroc: float, rho: float, members: int) -> float:
    """AUROC of the judge's mean over ``members`` pairs with one arriving trace (sim(t, c)), in logit space.

    The mean noise of m pairs (t, j) is sqrt(1 - rho) * mean(e_tj) + sqrt(rho / 2) * (u_t + mean(u_j)): variance
    (1 - rho) / m + rho / 2 + rho / (2 m). Averaging removes independent pair errors, not the arriving trace's own.
    """
    from statistics import NormalDist

    d = separation_for_auroc(auroc)
    var = (1 - rho) / members + rho / 2 + rho / (2 * members)
    return NormalDist().cdf(d / np.sqrt(var) / np.sqrt(2))


def effective_table(aurocs=(0.6, 0.7, 0.8, 0.87, 0.95), rhos=(0.0, 0.5, 0.9), members=(1, 5, 20)) -> str:
    columns = ["pair AUROC", *(f"rho={r}, m={m}" for r in rhos for m in members if not (m == 1 and r > 0))]
    rows = []
    for a in aurocs:
        rows.append([a, *(effective_auroc(a, r, m) for r in rhos for m in members if not (m == 1 and r > 0))])
    return to_markdown(Table(columns, rows), floatfmt=".3f", right_align=columns)


def value_of(setting: str, key: str) -> float | None:
    for part in setting.split():
        k, _, v = part.partition("=")
        if k == key:
            return float(v)
    return None


def interval_text(row: dict[str, Any], point: str, prefix: str, percent: bool = False) -> str | None:
    if row.get(point) is None:
        return None
    scale, unit = (100.0, "%") if percent else (1.0, "")
    fmt = ".1f" if percent else ".3f"
    mid, lo, hi = (scale * row[k] for k in (point, f"{prefix}_low", f"{prefix}_high"))
    return f"{mid:{fmt}}{unit} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown(rows: list[dict[str, Any]]) -> str:
    columns = [
        "sweep",
        "setting",
        "accuracy (policy)",
        "cons@512 accuracy",
        "difference",
        "token reduction",
        "tokens / problem",
        "judge calls / problem",
        "judge input / cons@512 tokens",
        "clusters",
        "K3 share",
        "pass@k",
    ]
    table = Table(
        columns,
        [
            [
                r["sweep"],
                r["setting"],
                interval_text(r, "accuracy", "accuracy"),
                interval_text(r, "cons_accuracy", "cons"),
                interval_text(r, "diff", "diff"),
                interval_text(r, "token_reduction", "reduction", percent=True),
                round(r["tokens_mean"]),
                round(r["judge_calls_mean"]),
                r["judge_input_tokens_mean"] / r["cons_tokens_mean"] if r.get("cons_tokens_mean") else None,
                r.get("clusters_mean"),
                r.get("k3_share"),
                r.get("pass_at_k"),
            ]
            for r in rows
        ],
    )
    return to_markdown(table, floatfmt=".2f", intfmt=",", missing="-", right_align=columns[2:])


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def errbar(ax, xs, rs, point, prefix, scale=1.0, **kw):
        ys = np.array([scale * r[point] for r in rs])
        lo = ys - np.array([scale * r[f"{prefix}_low"] for r in rs])
        hi = np.array([scale * r[f"{prefix}_high"] for r in rs]) - ys
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, **kw)

    sweep = sorted((r for r in rows if r["sweep"] == "auroc"), key=lambda r: value_of(r["setting"], "judge.auroc"))
    if sweep:
        xs = [value_of(r["setting"], "judge.auroc") for r in sweep]
        fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4))
        errbar(a1, xs, sweep, "accuracy", "accuracy", label="DeepPrune (simulated judge)")
        errbar(a1, xs, sweep, "cons_accuracy", "cons", label="cons@512 (same traces)", linestyle="--")
        a1.set(xlabel="judge AUROC (1.0 = oracle)", ylabel="accuracy", title="Accuracy, 95% intervals")
        a1.legend()
        errbar(a2, xs, sweep, "diff", "diff", color="C3")
        a2.axhline(0.0, color="grey", linewidth=0.8)
        a2.set(
            xlabel="judge AUROC (1.0 = oracle)", ylabel="accuracy difference", title="DeepPrune - cons@512 (paired)"
        )
        errbar(a3, xs, sweep, "token_reduction", "reduction", scale=100.0, color="C2")
        a3.set_xlabel("judge AUROC (1.0 = oracle)")
        a3.set_ylabel("token reduction vs cons@512 (%)", color="C2")
        a3.set_title("Token reduction, and judge calls per problem")
        twin = a3.twinx()
        twin.plot(xs, [r["judge_calls_mean"] for r in sweep], marker="s", color="C4")
        twin.set_ylabel("judge calls per problem", color="C4")
        for a in (a1, a2, a3):
            a.grid(alpha=0.3)
        fig.suptitle("N = 512, Table 6 settings, thought-branches answer distributions (100 problems x 3 orders)")
        fig.tight_layout()
        fig.savefig(out / "sim_auroc.png", dpi=120)
        plt.close(fig)

    def tradeoff(ax, key, sweep_name, default):
        rs = [r for r in rows if r["sweep"] == sweep_name]
        base = [r for r in rows if r["sweep"] == "auroc" and value_of(r["setting"], "judge.auroc") == 0.87]
        pts = [(value_of(r["setting"], key), r) for r in rs] + [(default, r) for r in base]
        pts = sorted(((x, r) for x, r in pts if x is not None), key=lambda t: t[0])
        xs = [x for x, _ in pts]
        errbar(ax, xs, [r for _, r in pts], "token_reduction", "reduction", scale=100.0, color="C2")
        ax.set_ylabel("token reduction (%)", color="C2")
        twin = ax.twinx()
        errbar(twin, xs, [r for _, r in pts], "accuracy", "accuracy", color="C0")
        cons = [r["cons_accuracy"] for _, r in pts]
        twin.plot(xs, cons, linestyle="--", color="C1", label="cons@512")
        twin.set_ylabel("accuracy (DeepPrune, cons@512 dashed)", color="C0")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)

    if any(r["sweep"] in ("tau", "k2") for r in rows):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        tradeoff(a1, "tau", "tau", 0.5)
        a1.set_title("tau (judge AUROC 0.87)")
        tradeoff(a2, "policy.k2", "k2", 20.0)
        a2.set_xscale("log", base=2)
        a2.set_title("K2 (judge AUROC 0.87)")
        fig.tight_layout()
        fig.savefig(out / "sim_tradeoffs.png", dpi=120)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="folder of sweep dirs (auroc/, tau/, k2/, ...)")
    ap.add_argument("--out", type=Path, default=Path("experiments/sim_scale"))
    args = ap.parse_args()
    jobs = load_jobs(args.root)
    if not jobs:
        raise SystemExit(f"no */*/results.jsonl under {args.root}")
    order = {"auroc": 0, "cons20": 1, "tau": 2, "k2": 3, "offset": 4, "rho": 5, "rho_high": 5}
    rows = []
    for (sweep, setting), by_seed in sorted(jobs.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        rows.append({"sweep": sweep, "setting": setting, **summarize(by_seed)})
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(Table.from_records(rows, COLUMNS), args.out / "results.csv")
    text = (
        markdown(rows)
        + "\nEffective AUROC of sim(t, c), the mean over m cluster members (K1 = 20):\n\n"
        + effective_table()
    )
    (args.out / "tables.md").write_text(text, encoding="utf-8")
    (args.out / "versions.json").write_text(json.dumps(package_versions(), indent=1) + "\n", encoding="utf-8")
    plot(rows, args.out)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
