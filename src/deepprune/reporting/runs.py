"""The runs of a report: find every ``metrics.json`` under a sweep, read its Hydra record, flatten it, label it.

:func:`collect_runs` finds every ``metrics.json`` under a sweep directory (a Hydra multirun, a single run, or a
folder of runs), pairs it with the job's ``.hydra/overrides.yaml`` and ``.hydra/config.yaml``, and flattens nested
metrics into dotted keys (``{"test": {"auroc": 0.8}}`` -> ``test.auroc``). A file that holds several results side
by side (online's ``policies``, analyze's ``models``) becomes one :class:`Run` per result. :func:`run_labels` names
each run by what varies; :func:`quantities` reads the plotted numbers out of a run by their keys.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprune.judge.scores import TEST_AUROC, TEST_AUROC_REFERENCE
from deepprune.online.accounting import ACCURACY, PASS_AT_K, POLICIES, POLICY, TOKEN_REDUCTION, TOKENS_TOTAL
from deepprune.redundancy import MODEL, MODELS
from deepprune.runtime import METRICS_FILE
from deepprune.tables import parse_value

#: Overrides that say where a run wrote, not what it computed: never table columns.
DEFAULT_IGNORE_OVERRIDES: tuple[str, ...] = ("hydra.*", "paths.*")

#: metrics.json keys that hold several results side by side -> the column naming each part: online's
#: ``policies`` (the policy and its cons@N reference), analyze's ``models`` (one row per generating model).
DEFAULT_SPLIT_KEYS: dict[str, str] = {POLICIES: POLICY, MODELS: MODEL}

#: The similarity threshold: a key of conf/online.yaml (an override or the resolved config), not a metric.
TAU = "tau"


#: Where each plotted quantity sits in a run's flattened metrics, overrides or config: the exact keys that the
#: writing modules define (online accounting, the judge's test, the online config), tried in order. Other files
#: name their keys with ``quantities=`` (glob patterns on dotted keys, see :func:`find_key`).
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "tau": (TAU,),
    "tokens": (TOKENS_TOTAL,),
    "accuracy": (ACCURACY,),
    # online runs over several arrival orders: the 95% bootstrap interval of the accuracy (runner.add_intervals)
    "accuracy_low": ("accuracy_low",),
    "accuracy_high": ("accuracy_high",),
    "pass_at_k": (PASS_AT_K,),
    # evaluate.py writes its average AUROC as "average_auroc" (until it writes TEST_AUROC as train does)
    "auroc": (TEST_AUROC, "average_auroc"),
    "policy": (POLICY,),
    "token_reduction": (TOKEN_REDUCTION,),
    "auroc_reference": (TEST_AUROC_REFERENCE,),
}


@dataclass
class Run:
    """One result: a ``metrics.json`` and what Hydra recorded about the job that wrote it."""

    path: Path  # the directory holding metrics.json
    name: str  # path relative to the sweep root ("." when the root itself is the run)
    overrides: dict[str, str] = field(default_factory=dict)  # from .hydra/overrides.yaml, in CLI order
    metrics: dict[str, Any] = field(default_factory=dict)  # flattened scalar metrics
    config: dict[str, Any] = field(default_factory=dict)  # flattened resolved config (.hydra/config.yaml)
    run_dir: Path | None = None  # the Hydra job directory (holds .hydra/); may be an ancestor of path
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # metrics.json as read (unflattened)
    part: str | None = None  # the entry of a split metrics.json this run is (e.g. one policy of "policies")

    @property
    def subpath(self) -> str:
        """What tells this result apart within its Hydra job: sub-directory and/or part ("" for neither)."""
        sub = self.path.relative_to(self.run_dir).as_posix() if self.run_dir and self.path != self.run_dir else ""
        return " ".join(filter(None, [sub, self.part]))

    def get(self, key: str, default: Any = None) -> Any:
        """A value by dotted key, looked up in metrics, then overrides, then config."""
        for source in (self.metrics, self.overrides, self.config):
            if key in source:
                return source[key]
        return default

    def find(self, patterns: Sequence[str]) -> tuple[str | None, Any]:
        """The first (key, value) whose key matches one of ``patterns`` (see :func:`find_key`)."""
        for source in (self.metrics, self.overrides, self.config):
            key = find_key(source, patterns)
            if key is not None:
                return key, source[key]
        return None, None


def flatten(obj: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts -> one dict of dotted keys to scalars (str, int, float, bool, None).

    Lists and other containers are left out: they are curves or per-item data, not table cells.

    >>> flatten({"test": {"auroc": 0.8, "n": 3}, "curve": [1, 2], "model": "a"})
    {'test.auroc': 0.8, 'test.n': 3, 'model': 'a'}
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        dotted = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted, sep))
        elif value is None or isinstance(value, str | int | float | bool):
            out[dotted] = value
    return out


def find_key(keys: Iterable[str], patterns: Sequence[str]) -> str | None:
    """The first key matching the patterns (glob, case-insensitive), trying patterns in order.

    Among keys matching the same pattern the shortest wins, so ``*tokens*`` prefers ``tokens``
    to ``tokens.judge_input``. A pattern without glob characters matches only the key it names.
    """
    keys = list(keys)
    for pattern in patterns:
        hits = [k for k in keys if fnmatch.fnmatchcase(k.lower(), pattern.lower())]
        if hits:
            return min(hits, key=lambda k: (len(k), k))
    return None


def parse_overrides(lines: Iterable[str], ignore: Sequence[str] = DEFAULT_IGNORE_OVERRIDES) -> dict[str, str]:
    """Hydra override strings (``+a.b=1``, ``~c``, ``loss=focal``) -> {key: value}, dropping ``ignore`` globs."""
    out: dict[str, str] = {}
    for line in lines:
        line = str(line).strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.lstrip("+~")
        if not sep:
            value = "<deleted>"
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore):
            continue
        out[key] = value
    return out


def _load_yaml(path: Path) -> Any:
    import yaml  # PyYAML comes with omegaconf / hydra

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None


def _hydra_dir(start: Path, root: Path) -> Path | None:
    """The nearest directory from ``start`` up to ``root`` that holds a ``.hydra/`` folder."""
    current = start
    while True:
        if (current / ".hydra").is_dir():
            return current
        if current == root or current.parent == current:
            return None
        current = current.parent


def _natural_key(path: Path) -> tuple:
    # multirun job folders are 0..N: sort 2 before 10
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The (unflattened) ``metrics.json`` of one run directory."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a finished deepprune run directory?")
    return _read_metrics(path)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(metrics).__name__}")
    return metrics


def load_run(
    metrics_path: str | Path, root: str | Path | None = None, ignore: Sequence[str] = DEFAULT_IGNORE_OVERRIDES
) -> Run:
    """Read one ``metrics.json`` and the Hydra record of the job it belongs to."""
    metrics_path = Path(metrics_path)
    root = Path(root) if root is not None else metrics_path.parent
    metrics = _read_metrics(metrics_path)
    path = metrics_path.parent
    run = Run(path=path, name=path.relative_to(root).as_posix() if path != root else ".", metrics=flatten(metrics))
    run.raw = metrics
    run.run_dir = _hydra_dir(path, root)
    if run.run_dir is not None:
        overrides_file = run.run_dir / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            lines = _load_yaml(overrides_file) or []
            if not isinstance(lines, list):
                raise ValueError(f"{overrides_file}: expected a YAML list of overrides")
            run.overrides = parse_overrides(lines, ignore)
        config_file = run.run_dir / ".hydra" / "config.yaml"
        if config_file.exists():
            config = _load_yaml(config_file) or {}
            run.config = flatten(config) if isinstance(config, dict) else {}
    return run


def split_run(run: Run, key: str, name_column: str = POLICY) -> list[Run]:
    """One run per entry of the dict ``run.raw[key]`` (e.g. ``{"policies": {"deepprune": {..}, "cons@18": {..}}}``).

    Each part gets ``name_column`` = the entry's name, the entry's flattened metrics, and the top-level scalars
    of the file (``average.ratio``, ``token_reduction``...) where they do not collide. Returns ``[run]`` when
    ``run.raw[key]`` is not a dict of dicts.
    """
    entries = run.raw.get(key)
    if not isinstance(entries, Mapping) or not entries or not all(isinstance(v, Mapping) for v in entries.values()):
        return [run]
    shared = {k: v for k, v in flatten({k: v for k, v in run.raw.items() if k != key}).items() if k != name_column}
    parts = []
    for name, entry in entries.items():
        metrics = {name_column: str(name), **shared, **flatten(entry)}
        parts.append(
            Run(
                run.path, f"{run.name}:{name}", run.overrides, metrics, run.config, run.run_dir, dict(entry), str(name)
            )
        )
    return parts


def collect_runs(
    sweep_dir: str | Path,
    ignore: Sequence[str] = DEFAULT_IGNORE_OVERRIDES,
    split: Mapping[str, str] | None = None,
) -> list[Run]:
    """Every run under ``sweep_dir`` (the directory itself, a multirun, or a folder of runs), in job order.

    A ``metrics.json`` that holds several results under one of the ``split`` keys ({key: name column}, default
    :data:`DEFAULT_SPLIT_KEYS`; ``{}`` splits nothing) becomes one run per entry (see :func:`split_run`).
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep_dir {root} is not a directory")
    files = sorted(root.rglob(METRICS_FILE), key=lambda p: _natural_key(p.parent.relative_to(root)))
    files = [f for f in files if ".hydra" not in f.parts]
    if not files:
        raise FileNotFoundError(f"no {METRICS_FILE} under {root}: is this a run or sweep directory of deepprune?")
    split = DEFAULT_SPLIT_KEYS if split is None else split
    runs = []
    for f in files:
        run = load_run(f, root, ignore)
        key = next((k for k in split if k in run.raw), None)
        runs += split_run(run, key, split[key]) if key else [run]
    return runs


def latest_run_dir(task_name: str, log_dir: str | Path = "logs", kind: str = "runs") -> Path:
    """The newest ``<log_dir>/<task_name>/<kind>/<timestamp>`` directory (kind: runs or multiruns)."""
    parent = Path(log_dir) / task_name / kind
    dirs = sorted(p for p in parent.glob("*") if p.is_dir()) if parent.is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"no run under {parent}: run `python -m deepprune.{task_name}` first")
    return dirs[-1]


def varying_overrides(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value differs between runs (or is missing in some), in first-seen order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys]
    if len(runs) <= 1:
        return keys
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def run_labels(runs: Sequence[Run]) -> list[str]:
    """A short readable label per run: its varying overrides, else its path under the sweep root."""
    keys = varying_overrides(runs)
    labels = []
    for run in runs:
        parts = [f"{k}={run.overrides[k]}" for k in keys if k in run.overrides]
        # a job that writes several results (per-policy sub-dirs or parts) needs those told apart too, unless an
        # override already names the part (policy=deepprune and its part "deepprune")
        if run.subpath and not any(part.endswith(f"={run.subpath}") for part in parts):
            parts.append(run.subpath)
        labels.append(" ".join(parts) if parts else run.name)
    return labels


def number(value: Any) -> float | None:
    """A cell as a float: numbers, and text that reads as one ("0.5" from an override); else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    parsed = parse_value(str(value))
    return float(parsed) if isinstance(parsed, int | float) and not isinstance(parsed, bool) else None


def quantities(run: Run, keys: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The plotted quantities of one run: {name: value} for each name in ``keys`` found in the run
    (numbers parsed; ``policy`` kept as text), plus ``<name>_key`` saying which key was used.

    ``keys`` ({name: patterns}) replaces :data:`DEFAULT_KEYS` for the names it gives; the others keep theirs.
    """
    keys = {**DEFAULT_KEYS, **(keys or {})}
    out: dict[str, Any] = {}
    for name, patterns in keys.items():
        key, value = run.find(patterns)
        if key is None:
            continue
        value = value if name == "policy" else number(value)
        if value is not None:
            out[name], out[f"{name}_key"] = value, key
    return out
