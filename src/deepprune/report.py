"""Aggregate the runs of a sweep into one comparison table and the paper's plots.

Run as::

    python -m deepprune.report sweep_dir=logs/online/multiruns/<timestamp>
    python -m deepprune.report sweep_dir=logs/train/multiruns/<timestamp> out_dir=experiments/table1_judge_ablation

Writes report.md, report.csv, the plots of ``deepprune.reporting.PLOTS`` the runs have data for
(report_{roc,pareto,tau,sweep,auroc,redundancy}.png) and report_versions.json into ``out_dir`` (default: the sweep
directory). The argument is a Hydra override, so it is ``sweep_dir=<dir>``, not a bare positional. All logic lives
in :mod:`deepprune.reporting`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from deepprune.reporting import build_report
from deepprune.runtime import CONF_DIR, get_logger

log = get_logger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="report")
def main(cfg: DictConfig) -> None:
    """Build the report for ``cfg.sweep_dir``."""
    keys = OmegaConf.to_container(cfg.quantities, resolve=True) if cfg.quantities else None
    written = build_report(
        sweep_dir=cfg.sweep_dir,
        out_dir=cfg.out_dir,
        title=cfg.title,
        metrics=list(cfg.metrics) if cfg.metrics is not None else None,
        keys=keys,
        ignore_overrides=list(cfg.ignore_overrides),
        plots=list(cfg.plots),
        floatfmt=cfg.floatfmt,
        split=dict(cfg.split) if cfg.split is not None else None,
    )
    for what, path in written.items():
        log.info("%s: %s", what, path)


if __name__ == "__main__":
    main()
