"""Measure inter-trace redundancy: the paper's Table 4 for any trace source.

Run as::

    python -m deepprune.analyze                                        # CHAMP traces (offline)
    python -m deepprune.analyze source=jsonl source.path=traces.jsonl  # your own trace file

Writes ``metrics.json`` (per-model pairs, same-answer pairs, ratio, excluded traces; pair-weighted average) and
``redundancy.md`` into the run directory, and prints the table.
"""

from __future__ import annotations

import time

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from deepprune.redundancy import redundancy_table, to_markdown, to_metrics
from deepprune.runtime import CONF_DIR, get_logger, run_dir, write_metrics

log = get_logger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="analyze")
def main(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    traces = instantiate(cfg.source)
    if not traces:  # a ratio over no pairs would read as "no redundancy"
        raise ValueError(f"no traces in source {cfg.source.get('path') or cfg.source._target_}")
    loaded = time.perf_counter()
    checker = instantiate(cfg.checker)
    rows = redundancy_table(traces, checker=checker, exclude_unfinished=cfg.exclude_unfinished)
    metrics = to_metrics(rows)
    metrics["source"] = cfg.source._target_
    metrics["checker_stats"] = dict(getattr(checker, "stats", {}))
    metrics["load_s"] = round(loaded - start, 3)
    metrics["wall_s"] = round(time.perf_counter() - start, 3)
    out = run_dir()
    write_metrics(metrics, out)
    table = to_markdown(rows)
    (out / "redundancy.md").write_text(table, encoding="utf-8")
    log.info("redundancy (%d traces, %.1f s) written to %s", len(traces), metrics["wall_s"], out)
    print(table)  # noqa: T201 - the table is this command's result
    return metrics


if __name__ == "__main__":
    main()
