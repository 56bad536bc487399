"""The one table writer: a plain :class:`Table`, written as GitHub markdown or CSV, and read back from CSV.

Every table deepprune prints or writes goes through :func:`to_markdown` / :func:`write_csv`: the report of a sweep
(:mod:`deepprune.reporting`), the redundancy table (:mod:`deepprune.redundancy`), an online run's summary and a
sweep's summary (:mod:`deepprune.online`). The writers differ only in the cell formats they pass. A leaf module
(standard library only), so every layer can import it without an import cycle.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How a float cell is written: a format spec (``".4f"``) or a function of the value.
FloatFormat = str | Callable[[float], str]


@dataclass
class Table:
    """A plain table: column names and rows of cell values (None for a missing cell)."""

    columns: list[str]
    rows: list[list[Any]]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Table:
        """One row per record, the cells of ``columns`` in order (None where a record lacks one)."""
        return cls(list(columns), [[r.get(c) for c in columns] for r in records])

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        """All values of one column."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def format_cell(value: Any, floatfmt: FloatFormat = ".4f", intfmt: str = "", missing: str = "") -> str:
    """One markdown cell: None -> ``missing``, booleans lower-case, floats by ``floatfmt``, ints by ``intfmt``.

    Text has ``|`` escaped and newlines flattened, so a cell never breaks the table's layout.
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return floatfmt(value) if callable(floatfmt) else format(value, floatfmt)
    if isinstance(value, int):
        return format(value, intfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(
    table: Table,
    floatfmt: FloatFormat = ".4f",
    intfmt: str = "",
    missing: str = "",
    right_align: Iterable[str] = (),
) -> str:
    """The table as GitHub markdown, ending in a newline; cells as :func:`format_cell` writes them.

    ``right_align`` names the columns whose rule is ``---:`` (numbers in the paper's layout); the others ``---``.
    """
    right = set(right_align)
    unknown = right - set(table.columns)
    if unknown:
        raise ValueError(f"to_markdown: right_align names columns the table lacks: {sorted(unknown)}")

    def line(cells: Iterable[Any]) -> str:
        return "| " + " | ".join(format_cell(v, floatfmt, intfmt, missing) for v in cells) + " |"

    rule = "|" + "|".join("---:" if c in right else "---" for c in table.columns) + "|"
    return "\n".join([line(table.columns), rule, *(line(row) for row in table.rows)]) + "\n"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else value  # repr: full float precision


def write_csv(table: Table, path: str | Path) -> Path:
    """Write the table as CSV (full float precision; a missing cell is an empty field)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.columns)
        writer.writerows([_csv_cell(v) for v in row] for row in table.rows)
    return path


def parse_value(text: str) -> Any:
    """A CSV field or override value back to int, float, bool or None where it reads as one."""
    if text == "" or text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_csv(path: str | Path) -> Table:
    """Read a table written by :func:`write_csv`, numbers and booleans parsed back."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        columns = next(reader, None)
        if columns is None:
            raise ValueError(f"{path}: empty CSV file (no header line)")
        rows = [[parse_value(v) for v in row] for row in reader]
    return Table(columns, rows)
