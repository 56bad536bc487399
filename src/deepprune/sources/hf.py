"""Hugging Face ``datasets`` as a trace or problem source (for users with a network or a local copy).

``columns`` maps a :class:`~deepprune.traces.Trace` field to the dataset column that holds it, for example
``{"problem_id": "id", "text": "response", "model": "generator"}``. A trace field without a mapping is read from
the column of the same name when there is one; every other column is kept in ``Trace.extra``. Rows are validated
exactly like JSONL lines (errors name the dataset, split, row and field), except that an integer
``problem_id`` column is converted to a string, because many hub datasets store ids as integers.
``drop_columns`` ignores columns (needed when an unmapped column carries a mapped field's name).

Problems use the same key detection as problem files (:mod:`deepprune.sources.problems`)::

    load_hf_problems("HuggingFaceH4/MATH-500", split="test")           # problem / answer / unique_id

Tests pass an in-memory ``datasets.Dataset`` as ``data`` instead of a hub name, so nothing downloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deepprune.runtime import get_logger
from deepprune.sources import Problem
from deepprune.sources.jsonl import select_traces
from deepprune.sources.problems import problems_from_records
from deepprune.traces import Trace, TraceFormatError

log = get_logger(__name__)


def _load(path: str | None, name: str | None, split: str, data: Any, data_files: Any) -> tuple[Any, str]:
    if data is not None:
        return data, f"<in-memory dataset>[{split}]"
    if path is None:
        raise ValueError("give a dataset `path` (hub id, local folder or builder such as 'json') or `data`")
    import datasets  # lazy: only this adapter needs it

    ds = datasets.load_dataset(path, name, split=split, data_files=data_files)
    return ds, f"{path}{'/' + name if name else ''}[{split}]"


def load_hf_traces(
    path: str | None = None,
    name: str | None = None,
    split: str = "train",
    columns: Mapping[str, str] | None = None,
    data_files: Any = None,
    data: Any = None,
    drop_columns: Sequence[str] = (),
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
) -> list[Trace]:
    """Traces from a Hugging Face dataset split; ``columns`` maps Trace fields to column names."""
    ds, source = _load(path, name, split, data, data_files)
    mapping = dict(columns or {})
    missing = [c for c in mapping.values() if c not in ds.column_names]
    if missing:
        raise ValueError(f"{source}: column(s) {missing} not in dataset (columns: {ds.column_names})")
    # an unmapped column named like a mapped field (a "text" column when text comes from "response") is ambiguous
    clash = [c for c in ds.column_names if c in mapping and mapping[c] != c and c not in drop_columns]
    if clash:
        raise ValueError(f"{source}: column(s) {clash} clash with mapped trace fields; list them in drop_columns")
    mapped_columns = set(mapping.values())
    traces = []
    for i, row in enumerate(ds):
        d = {f: row[c] for f, c in mapping.items()}
        d.update((c, v) for c, v in row.items() if c not in mapped_columns and c not in drop_columns)
        pid = d.get("problem_id")
        if isinstance(pid, int) and not isinstance(pid, bool):
            d["problem_id"] = str(pid)
        traces.append(Trace.from_dict(d, where=f"{source} row {i}"))
    if not traces:
        raise TraceFormatError(source, None, "no rows")
    traces = select_traces(traces, models=models, max_problems=max_problems, where=source)
    log.info("%s: %d traces", source, len(traces))
    return traces


def load_hf_problems(
    path: str | None = None,
    name: str | None = None,
    split: str = "test",
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    limit: int | None = None,
    dataset: str | None = None,
    id_prefix: str = "",
    match: Mapping[str, str] | None = None,
    data_files: Any = None,
    data: Any = None,
) -> list[Problem]:
    """Problems from a Hugging Face dataset split (keys detected as for problem files; ids default to row numbers)."""
    ds, source = _load(path, name, split, data, data_files)
    records = [(f"{source} row {i}", str(i), row) for i, row in enumerate(ds)]
    return problems_from_records(
        records,
        source=source,
        question_key=question_key,
        answer_key=answer_key,
        id_key=id_key,
        limit=limit,
        dataset=dataset if dataset is not None else (path or "hf").split("/")[-1],
        id_prefix=id_prefix,
        match=match,
    )
