"""Inter-trace redundancy: the share of same-answer pairs per model (the paper's Table 4 / Figure 2a).

For each generating model: the exhaustive within-problem pairs of :func:`deepprune.pairs.build_pairs`, how many
reach the same answer, and their ratio. The ``Average`` row is pair-weighted (total same-answer pairs over total
pairs), as the paper's appendix A explains; ``mean_ratio`` in the metrics is the plain mean over models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from deepprune.pairs import AnswerClasses, PairSet, build_pairs
from deepprune.tables import Table
from deepprune.tables import to_markdown as markdown_table
from deepprune.traces import Trace

AVERAGE = "Average"

#: metrics.json keys of an analyze run (:func:`to_metrics`), read by the report (deepprune.reporting): ``models``
#: holds one row per generating model (its fields named as in :class:`RedundancyRow`), ``average`` the
#: pair-weighted row; a report row of one model names it in the ``model`` column.
MODELS = "models"
AVERAGE_ROW = "average"
MEAN_RATIO = "mean_ratio"
MODEL = "model"
RATIO = "ratio"
SAME_ANSWER_PAIRS = "same_answer_pairs"


@dataclass
class RedundancyRow:
    """One line of the table."""

    model: str
    total_pairs: int
    same_answer_pairs: int
    ratio: float  # same_answer_pairs / total_pairs (0.0 when there are no pairs)
    traces: int
    excluded_traces: int
    problems: int


def redundancy_rows(traces: Sequence[Trace], pairs: PairSet) -> list[RedundancyRow]:
    """Per-model rows (sorted by model name) followed by the pair-weighted ``Average`` row."""
    total: Counter[str] = Counter()
    same: Counter[str] = Counter()
    for p in pairs.pairs:
        total[str(p.a.model)] += 1
        same[str(p.a.model)] += p.label
    n_traces = Counter(str(t.model) for t in traces)
    problems: dict[str, set[str]] = {}
    for t in traces:
        problems.setdefault(str(t.model), set()).add(t.problem_id)
    rows = [
        RedundancyRow(
            model=m,
            total_pairs=total[m],
            same_answer_pairs=same[m],
            ratio=same[m] / total[m] if total[m] else 0.0,
            traces=n_traces[m],
            excluded_traces=pairs.excluded_by_model.get(m, 0),
            problems=len(problems[m]),
        )
        for m in sorted(n_traces)
    ]
    all_total, all_same = sum(total.values()), sum(same.values())
    rows.append(
        RedundancyRow(
            model=AVERAGE,
            total_pairs=all_total,
            same_answer_pairs=all_same,
            ratio=all_same / all_total if all_total else 0.0,
            traces=len(traces),
            excluded_traces=pairs.excluded_traces,
            problems=len({t.problem_id for t in traces}),
        )
    )
    return rows


def redundancy_table(
    traces: Sequence[Trace], checker: AnswerClasses | None = None, exclude_unfinished: bool = True
) -> list[RedundancyRow]:
    """Build the pairs of ``traces`` and return the table rows (see :func:`redundancy_rows`)."""
    return redundancy_rows(traces, build_pairs(traces, checker=checker, exclude_unfinished=exclude_unfinished))


def to_markdown(rows: Sequence[RedundancyRow]) -> str:
    """The table in the paper's layout plus trace counts (numbers right-aligned, counts with thousands separators)."""
    columns = ["Model", "Total Pairs", "Same Answer Pairs", "Similarity Ratio", "Traces", "Excluded Traces"]
    cells = [
        [f"**{r.model}**" if r.model == AVERAGE else r.model, r.total_pairs, r.same_answer_pairs, r.ratio, r.traces,
         r.excluded_traces]
        for r in rows
    ]  # fmt: skip
    return markdown_table(Table(columns, cells), floatfmt=".4f", intfmt=",", right_align=columns[1:])


def to_metrics(rows: Sequence[RedundancyRow]) -> dict[str, Any]:
    """JSON-ready metrics: ``models`` (per-model rows), ``average`` (pair-weighted) and ``mean_ratio``."""
    models = {r.model: _row_dict(r) for r in rows if r.model != AVERAGE}
    average = next(_row_dict(r) for r in rows if r.model == AVERAGE)
    mean_ratio = sum(m[RATIO] for m in models.values()) / len(models) if models else 0.0
    return {MODELS: models, AVERAGE_ROW: average, MEAN_RATIO: mean_ratio}


def _row_dict(row: RedundancyRow) -> dict[str, Any]:
    d = asdict(row)
    d.pop(MODEL)
    return d
