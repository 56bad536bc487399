"""The report's plots: PNGs drawn from plain numbers (the data of each is made in :mod:`deepprune.reporting.report`).

- :func:`plot_roc_overlay`: ROC curves of several runs on one plot (the one ROC plot,
  :func:`deepprune.judge.metrics.plot_roc`, that ``train`` and ``evaluate`` draw ``roc.png`` with);
- :func:`plot_pareto`: tokens vs accuracy, one point per run, with the Pareto front (Table 2's view);
- :func:`plot_tau_tradeoff`: tau against tokens, accuracy and pass@k (Table 3);
- :func:`plot_metric_sweep`: judge AUROC against a swept number such as the truncation length k (Figure 6);
- :func:`plot_auroc_bars`: test AUROC per run beside the zero-shot reference (Table 1);
- :func:`plot_redundancy`: the same-answer pair ratio per model beside the paper's (Table 4 / Figure 2).

matplotlib's object API throughout: no pyplot state, no GUI backend, safe in workers and notebooks; matplotlib
is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepprune.judge.metrics import RocCurve, plot_roc


def plot_roc_overlay(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, title: str = "ROC"
) -> Path:
    """Overlay ROC curves given as points (label -> (fpr, tpr)); the legend gives each curve's AUROC."""
    if not curves:
        raise ValueError("plot_roc_overlay: no curves")
    return plot_roc({label: RocCurve(list(fpr), list(tpr)) for label, (fpr, tpr) in curves.items()}, path, title)


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
    accuracy_low: Sequence[float | None] | None = None,
    accuracy_high: Sequence[float | None] | None = None,
) -> Path:
    """Scatter of tokens vs accuracy, one labelled point per run, with the Pareto front drawn; a point with an
    accuracy interval (``accuracy_low``/``accuracy_high``, e.g. an online run over several orders) gets an error
    bar."""
    if not labels:
        raise ValueError("plot_pareto: no points")
    fig, (ax,) = _new_figure(width=7.0, height=5.0)
    points = list(zip(map(float, tokens), map(float, accuracy)))
    lows = list(accuracy_low) if accuracy_low is not None else [None] * len(points)
    highs = list(accuracy_high) if accuracy_high is not None else [None] * len(points)
    for label, (x, y), low, high in zip(labels, points, lows, highs):
        dot = ax.scatter([x], [y], s=45, label=label, zorder=3)
        if low is not None and high is not None:
            ax.errorbar([x], [y], yerr=[[y - float(low)], [float(high) - y]], fmt="none", capsize=3, lw=1,
                        ecolor=dot.get_facecolor()[0], zorder=2)  # fmt: skip
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
