"""Run-time plumbing shared by every Hydra entry point.

Where configs live, where a run writes, how results are written (atomically, or appended line by
line so a crash or Ctrl-C loses nothing), logging and progress bars. No heavy imports here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The Hydra config tree. The package is installed editable from the repository, so `conf/` sits
#: two levels above this file; DEEPPRUNE_CONF points elsewhere for a relocated checkout.
CONF_DIR: str = os.environ.get("DEEPPRUNE_CONF", str(Path(__file__).resolve().parents[2] / "conf"))

METRICS_FILE = "metrics.json"


def get_logger(name: str) -> logging.Logger:
    """Return a module logger; Hydra configures the handlers in entry points."""
    return logging.getLogger(name)


def run_dir() -> Path:
    """The output directory of the current Hydra run (the working directory outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return Path.cwd()


def hydra_choice(group: str) -> str | None:
    """The option chosen for config ``group`` in the current Hydra run (``source=skythought_amc23`` gives
    ``"skythought_amc23"``); None outside Hydra or when the group has no choice."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group)
    except (ImportError, ValueError):
        return None
    return None if choice is None else str(choice)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically (write a temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def write_metrics(metrics: dict[str, Any], directory: str | Path | None = None) -> Path:
    """Write `metrics.json` into `directory` (default: the current run directory)."""
    return write_json(Path(directory if directory is not None else run_dir()) / METRICS_FILE, metrics)


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk, so finished work survives a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def drop_torn_tail(path: str | Path) -> int:
    """Cut a last line that a crash left without its newline; returns the number of bytes removed.

    Appending after such a line would glue the next record onto it, so every appender calls this first.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        fh.seek(0)
        data = fh.read()
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
    get_logger(__name__).warning(
        "%s: removed a torn last line (%d bytes) left by an interrupted write", path, len(data) - keep
    )
    return len(data) - keep


def read_jsonl_records(path: str | Path) -> list[dict[str, Any]]:
    """Read the complete lines of a results file written by `append_jsonl`.

    A torn last line (the process died mid-write) is ignored: that record is simply redone on resume.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON") from None
    return records


def progress_bar(desc: str, total: int | None = None, unit: str = "it", leave: bool = True) -> Any:
    """A manually updated tqdm bar on an interactive terminal; silent in CI or when output is redirected
    (``DEEPPRUNE_PROGRESS=1`` forces it on)."""
    disable = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    if os.environ.get("DEEPPRUNE_PROGRESS") == "1":
        disable = False
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True, leave=leave)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`progress_bar` over an iterable."""
    with progress_bar(desc, total, unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
