"""Trace files: the JSONL format of :mod:`deepprune.traces`, as a Hydra trace source.

``conf/source/jsonl.yaml`` targets :func:`load_trace_file`; ``source=jsonl source.path=traces.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepprune.runtime import get_logger
from deepprune.traces import OnError, Trace, TraceLoadReport, read_traces
from deepprune.validation import check_int_at_least

log = get_logger(__name__)


def load_trace_file(
    path: str | Path,
    on_error: OnError = "raise",
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
) -> list[Trace]:
    """Read a trace file (``.jsonl`` or ``.jsonl.gz``), optionally keeping some models and the first problems.

    ``on_error="skip"`` skips malformed lines (counted and logged); ``models`` keeps only traces whose ``model``
    is listed (an unknown name raises, listing the models present); ``max_problems`` keeps the first N problem
    ids in file order. A file with no trace (empty, or every line skipped) is an error: "no traces in <file>".
    """
    check_int_at_least("max_problems", max_problems, 1, allow_none=True)
    report = TraceLoadReport()
    traces = read_traces(path, on_error=on_error, report=report)
    if not traces:
        raise ValueError(f"no traces in {path}: {_why_empty(report)}")
    traces = select_traces(traces, models=models, max_problems=max_problems, where=str(path))
    log.info(
        "%s: %d traces (%d bad lines skipped, %d of them duplicates)",
        path, len(traces), report.skipped, report.duplicates,
    )  # fmt: skip
    return traces


def _why_empty(report: TraceLoadReport) -> str:
    if not report.lines and not report.skipped:
        return "the file is empty (or only blank lines)"
    return f"all {report.skipped} line(s) were skipped as bad (on_error=skip), the first: {report.errors[0]}"


def select_traces(
    traces: list[Trace],
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
    where: str = "traces",
) -> list[Trace]:
    """Keep the traces of ``models`` (all when ``None``) and of the first ``max_problems`` problem ids."""
    check_int_at_least("max_problems", max_problems, 1, allow_none=True)
    if models is not None:
        present = {t.model for t in traces}
        missing = [m for m in models if m not in present]
        if missing:
            raise ValueError(f"{where}: no traces for model(s) {missing}; models present: {sorted(map(str, present))}")
        wanted = set(models)
        traces = [t for t in traces if t.model in wanted]
    if max_problems is not None:
        keep: dict[str, None] = {}
        for t in traces:
            if len(keep) >= max_problems:
                break
            keep.setdefault(t.problem_id)
        traces = [t for t in traces if t.problem_id in keep]
    return traces
