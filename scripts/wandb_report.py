"""Put a local sweep into Weights & Biases and build the comparison report there.

NEEDS A W&B ACCOUNT AND NETWORK for `--report`. Nothing in the test suite or the CPU recipes runs this.

Two steps, each optional:

1. ``--upload``: every result under a sweep directory (what ``python -m deepprune.report`` tabulates, read with
   ``deepprune.reporting.collect_runs``) becomes one W&B run: config = the job's Hydra overrides (+ ``policy``),
   summary = its flattened metrics, all runs of the sweep in one *group* (the sweep directory's name) so the W&B
   workspace shows them side by side. Works offline too: ``WANDB_MODE=offline`` then ``wandb sync wandb/offline-*``.
   (Training runs started with ``logger=wandb`` are already grouped by sweep directory; uploading them again
   gives them the same config keys as the online runs, which the panels below rely on.)
2. ``--report``: a saved W&B Report (``wandb_workspaces.reports.v2``; ``pip install wandb-workspaces`` or
   ``pip install 'wandb[workspaces]'``, not a deepprune dependency) with one panel grid on that group:
   test AUROC per run + a parallel-coordinates view of the recipe (judge sweeps), or tokens vs accuracy and
   tau vs tokens / accuracy / pass@k (online sweeps): the same views as report_*.png.

Usage::

    python scripts/wandb_report.py logs/online/multiruns/<timestamp> --upload --report --entity <you>
    python scripts/wandb_report.py logs/train/multiruns/<timestamp> --upload --kind judge
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepprune.judge.scores import TEST_AUROC, TEST_TNR
from deepprune.online.accounting import ACCURACY, PASS_AT_K, TOKENS_TOTAL
from deepprune.reporting import TAU, collect_runs, run_labels


def upload(sweep_dir: Path, project: str, entity: str | None, group: str, job_type: str) -> int:
    """One W&B run per collected result; returns how many were logged."""
    import wandb

    runs = collect_runs(sweep_dir)
    for label, run in zip(run_labels(runs), runs):
        config = {**run.overrides, "sweep_dir": sweep_dir.as_posix(), "result": run.name}
        if run.part:
            config["policy"] = run.part
        numeric = {k: v for k, v in run.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        with wandb.init(project=project, entity=entity, group=group, job_type=job_type, name=label,
                        config=config, reinit="create_new") as wb:  # fmt: skip
            wb.summary.update(numeric)
    return len(runs)


def build_report(project: str, entity: str, group: str, kind: str, title: str) -> str:
    """Save a W&B Report for the runs of ``group``; returns its URL."""
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(entity=entity, project=project, name=group, filters=f"Metric('group') == '{group}'")
    if kind == "judge":
        panels = [
            wr.BarPlot(title="test AUROC (Table 1)", metrics=[TEST_AUROC], orientation="h"),
            wr.BarPlot(title="test TNR@FNR=0.2", metrics=[TEST_TNR], orientation="h"),
            wr.ParallelCoordinatesPlot(
                title="recipe vs AUROC",
                columns=[
                    wr.ParallelCoordinatesPlotColumn(metric=wr.Config("data.truncation")),
                    wr.ParallelCoordinatesPlotColumn(metric=wr.Config("loss")),
                    wr.ParallelCoordinatesPlotColumn(metric=wr.Config("sampler")),
                    wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(TEST_AUROC)),
                ],
            ),
        ]
    else:
        panels = [
            wr.ScatterPlot(title="tokens vs accuracy (Table 2)", x=wr.SummaryMetric(TOKENS_TOTAL),
                           y=wr.SummaryMetric(ACCURACY)),
            wr.ScatterPlot(title="tau vs tokens (Table 3)", x=wr.Config(TAU), y=wr.SummaryMetric(TOKENS_TOTAL)),
            wr.ScatterPlot(title="tau vs accuracy", x=wr.Config(TAU), y=wr.SummaryMetric(ACCURACY)),
            wr.ScatterPlot(title="tau vs pass@k", x=wr.Config(TAU), y=wr.SummaryMetric(PASS_AT_K)),
        ]  # fmt: skip
    report = wr.Report(
        entity=entity,
        project=project,
        title=title,
        description=f"deepprune sweep {group}: same views as `python -m deepprune.report`.",
        blocks=[wr.H1(title), wr.PanelGrid(runsets=[runset], panels=panels)],
    )
    report.save()
    return report.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--project", default="deepprune")
    parser.add_argument("--entity", default=None, help="W&B entity (needed for --report)")
    parser.add_argument("--group", default=None, help="W&B group (default: the sweep directory's name)")
    parser.add_argument("--kind", choices=["online", "judge"], default="online")
    parser.add_argument("--upload", action="store_true", help="log every result of the sweep as a W&B run")
    parser.add_argument("--report", action="store_true", help="save a W&B Report on the group (network)")
    args = parser.parse_args()
    group = args.group or args.sweep_dir.resolve().name
    if args.upload:
        n = upload(args.sweep_dir, args.project, args.entity, group, job_type=args.kind)
        print(f"logged {n} run(s) to {args.project}, group {group}")  # noqa: T201
    if args.report:
        if not args.entity:
            parser.error("--report needs --entity")
        url = build_report(args.project, args.entity, group, args.kind, f"deepprune {args.kind}: {group}")
        print(url)  # noqa: T201


if __name__ == "__main__":
    main()
