"""Turn run directories into comparison tables and the paper's plots: the logic of ``python -m deepprune.report``.

The package reads like the report it writes:

- :mod:`~deepprune.reporting.runs`: collect every ``metrics.json`` under a sweep with its Hydra record, flatten it,
  label each run by what varies, and read the plotted quantities by the keys their writers define;
- :mod:`~deepprune.reporting.tables`: one row per run, written by the one table writer (:mod:`deepprune.tables`);
- :mod:`~deepprune.reporting.plots`: the PNGs (ROC overlay, tokens vs accuracy, tau trade-off, AUROC against k,
  AUROC per run, redundancy per model);
- :mod:`~deepprune.reporting.report`: what each plot needs from the runs, the plot list, and :func:`build_report`.

Every name notebooks and scripts use is importable from here. No entry point, no torch: importing the package
costs numpy, and matplotlib only when plotting.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepprune.judge.metrics import RocCurve, plot_roc
from deepprune.judge.scores import SCORE_REFERENCE as REFERENCE_SCORE_FIELD
from deepprune.reporting.plots import (
    pareto_front,
    plot_auroc_bars,
    plot_metric_sweep,
    plot_pareto,
    plot_redundancy,
    plot_roc_overlay,
    plot_tau_tradeoff,
)
from deepprune.reporting.report import (
    AUROC_PNG,
    DEFAULT_PACKAGES,
    PAPER_TABLE4,
    PARETO_PNG,
    PLOTS,
    REDUNDANCY_PNG,
    REPORT_CSV,
    REPORT_MD,
    ROC_PNG,
    SWEEP_PNG,
    TAU_PNG,
    VERSIONS_JSON,
    PlotSpec,
    ReportInput,
    auroc_bars,
    build_report,
    load_roc_curves,
    package_versions,
    pareto_points,
    redundancy_ratios,
    roc_curves,
    roc_points,
    sweep_points,
    tradeoff_points,
)
from deepprune.reporting.runs import (
    DEFAULT_IGNORE_OVERRIDES,
    DEFAULT_KEYS,
    DEFAULT_SPLIT_KEYS,
    TAU,
    Run,
    collect_runs,
    find_key,
    flatten,
    latest_run_dir,
    load_metrics,
    load_run,
    parse_overrides,
    quantities,
    run_labels,
    split_run,
    varying_overrides,
)
from deepprune.reporting.tables import mapping_table, runs_table
from deepprune.tables import Table, read_csv, to_markdown, write_csv


def _auc(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    """The area under ROC points (the old module's helper; :attr:`RocCurve.auroc` is the one computation)."""
    return RocCurve(list(fpr), list(tpr)).auroc


__all__ = [
    "AUROC_PNG", "DEFAULT_IGNORE_OVERRIDES", "DEFAULT_KEYS", "DEFAULT_PACKAGES", "DEFAULT_SPLIT_KEYS", "PAPER_TABLE4",
    "PARETO_PNG", "PLOTS", "REDUNDANCY_PNG", "REFERENCE_SCORE_FIELD", "REPORT_CSV", "REPORT_MD", "ROC_PNG",
    "SWEEP_PNG", "TAU", "TAU_PNG", "VERSIONS_JSON", "PlotSpec", "ReportInput", "RocCurve", "Run", "Table",
    "auroc_bars", "build_report", "collect_runs", "find_key", "flatten", "latest_run_dir", "load_metrics",
    "load_roc_curves", "load_run", "mapping_table", "package_versions", "pareto_front", "pareto_points",
    "parse_overrides", "plot_auroc_bars", "plot_metric_sweep", "plot_pareto", "plot_redundancy", "plot_roc",
    "plot_roc_overlay", "plot_tau_tradeoff", "quantities", "read_csv", "redundancy_ratios", "roc_curves",
    "roc_points", "run_labels", "runs_table", "split_run", "sweep_points", "to_markdown", "tradeoff_points",
    "varying_overrides", "write_csv"
]  # fmt: skip
