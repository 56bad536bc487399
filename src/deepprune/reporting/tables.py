"""The report's tables: one row per run (the overrides that vary, then the metrics), or one row per key of a dict.

They are plain :class:`deepprune.tables.Table` objects, written by the project's one table writer
(:func:`~deepprune.tables.to_markdown`, :func:`~deepprune.tables.write_csv`), which this module re-exports.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from deepprune.reporting.runs import Run, flatten, varying_overrides
from deepprune.tables import Table, parse_value, read_csv, to_markdown, write_csv

__all__ = ["Table", "mapping_table", "read_csv", "runs_table", "to_markdown", "write_csv"]


def runs_table(
    runs: Sequence[Run],
    metrics: Sequence[str] | None = None,
    all_overrides: bool = False,
) -> Table:
    """One row per run: ``run`` (path under the sweep), the overrides that vary, then the metrics.

    ``metrics`` selects metric columns by glob pattern, in pattern order (default: every scalar metric,
    in first-seen order). ``all_overrides`` keeps overrides that are the same in every run.
    """
    override_keys = (
        varying_overrides(runs) if not all_overrides else list(dict.fromkeys(k for r in runs for k in r.overrides))
    )
    seen: list[str] = list(dict.fromkeys(k for run in runs for k in run.metrics))
    if metrics is None:
        metric_keys = seen
    else:
        metric_keys = []
        for pattern in metrics:
            metric_keys += [k for k in seen if fnmatch.fnmatchcase(k, pattern) and k not in metric_keys]
    columns = ["run", *override_keys, *[k for k in metric_keys if k not in override_keys]]
    rows = []
    for run in runs:
        row: list[Any] = [run.name]
        row += [parse_value(run.overrides[k]) if k in run.overrides else None for k in override_keys]
        row += [run.metrics.get(k) for k in columns[1 + len(override_keys) :]]
        rows.append(row)
    return Table(columns, rows)


def mapping_table(mapping: Mapping[str, Any], key_name: str = "model") -> Table:
    """A dict of dicts (e.g. per-model metrics ``{model: {auroc: .., n: ..}}``) as a table, one row per key.

    Keys are kept whole (model names may contain dots); inner dicts are flattened; non-dict values skipped.
    """
    inner = {k: flatten(v) for k, v in mapping.items() if isinstance(v, Mapping)}
    columns = [key_name, *dict.fromkeys(c for row in inner.values() for c in row)]
    return Table(columns, [[k, *(row.get(c) for c in columns[1:])] for k, row in inner.items()])
