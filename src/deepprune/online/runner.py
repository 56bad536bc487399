"""The online runner: policy (and its cons@N reference) over problems, resumable JSONL, metrics, sweep summary.

``run_online`` runs the policy on every problem, and, when a ``reference`` policy is given (cons@N by default in
``conf/online.yaml``), runs it on the SAME traces (same per-problem seed, so replay hands out identical samples)
to measure the token reduction. One record per finished problem is appended to ``<out_dir>/results.jsonl``
(flushed line by line). Problems already recorded there, or in ``<resume_dir>/results.jsonl`` (copied over), are
skipped, so an interrupted run resumes where it stopped; ``fingerprint.json`` holds the settings that made them,
and a run with other settings refuses to reuse them. ``metrics.json`` holds the summary per policy.

Per-problem seeds are derived from the run seed and the problem id (not its position), so skipping or
reordering problems never changes which traces a problem gets. With ``orders=R`` every problem runs R times, each
with its own seed (:func:`order_seed`; order 0 is the problem's seed of a single-order run), which under replay is
R seeded arrival orders of the same traces; policy and reference share each order's seed. ``metrics.json`` then
holds, besides the means over all (problem, order) runs, 95% bootstrap intervals that resample *problems*
(:mod:`deepprune.stats`): accuracy of both, the token reduction, and the paired accuracy difference to the
reference on the same orders.

``concurrency=C`` keeps C problem runs in flight on the one generator (the async core: ``policy.arun`` over
``as_async(generator)``; with vLLM their traces share the engine). Records are appended as runs complete, so
``results.jsonl`` may be out of order, and resuming works the same; ``metrics.json`` is computed from the records
in problem order (then arrival order), so under replay it is identical to the sequential run's. ``concurrency=1``
(the default) runs one problem at a time through the policies' sync ``run``, with a per-trace progress bar.

:class:`SweepSummary` is a Hydra callback: at the end of a multirun it reads each job's ``metrics.json`` and
overrides, writes ``sweep_summary.md`` into the sweep dir and logs the table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepprune.online.accounting import POLICIES, POLICY, format_table, score_outcome, summarize
from deepprune.online.generators.base import TraceProgress, as_async, problem_seed, run_sync
from deepprune.runtime import (
    append_jsonl,
    get_logger,
    progress,
    progress_bar,
    read_jsonl_records,
    write_json,
    write_metrics,
)

if TYPE_CHECKING:
    from deepprune.answers import AnswerEquivalence
    from deepprune.online.generators.base import Generator
    from deepprune.online.policies import Policy
    from deepprune.sources import Problem

log = get_logger(__name__)

__all__ = [
    "drop_seen_problems", "problem_seed", "order_seed", "run_online", "metrics_table", "SweepSummary", "RESULTS_FILE",
]  # fmt: skip

RESULTS_FILE = "results.jsonl"
FINGERPRINT_FILE = "fingerprint.json"
# the policy attributes that change outcomes (those a policy has), and the judge's
_POLICY_KEYS = ("n", "tau", "max_clusters", "k1", "k2", "k3", "warmup", "window", "percentile", "when_full")
_JUDGE_KEYS = ("p", "name", "model_name", "max_tokens", "max_length", "export_dir", "kind")
TABLE_COLUMNS = (
    "policy", "problems", "orders", "accuracy", "accuracy_ci", "tokens_mean", "token_reduction", "token_reduction_ci",
    "diff_vs_reference", "judge_calls_mean", "pass_at_k",
)  # fmt: skip


def drop_seen_problems(problems: Sequence[Problem], seen: set[str]) -> tuple[list[Problem], int]:
    """The problems not in ``seen`` (those a trained judge saw), in order, and how many were dropped."""
    kept = [p for p in problems if str(p.problem_id) not in seen]
    return kept, len(problems) - len(kept)


def run_online(
    problems: Sequence[Problem],
    generator: Generator,
    policy: Policy,
    out_dir: str | Path,
    reference: Policy | None = None,
    seed: int = 0,
    resume_dir: str | Path | None = None,
    checker: AnswerEquivalence | None = None,
    settings: Mapping[str, Any] | None = None,
    orders: int = 1,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Run ``policy`` (and ``reference``) on ``problems``; returns the metrics also written to metrics.json.

    ``settings`` (JSON values) are everything that changes a problem's outcome; the entry passes its resolved
    config. ``None`` takes the seed and the policies' own settings (:func:`policy_settings`). They are stored in
    ``<out_dir>/fingerprint.json``; finished problems are reused (from ``out_dir`` or ``resume_dir``) only when
    their run stored the same settings, otherwise the run stops and names the settings that differ.
    ``concurrency``: problem runs in flight at once (see the module docstring).
    """
    from deepprune.validation import check_int_at_least

    if orders < 1:
        raise ValueError(f"orders must be >= 1, got {orders}")
    check_int_at_least("concurrency", concurrency, 1)
    out_dir = Path(out_dir)
    results = out_dir / RESULTS_FILE
    if settings is None:
        settings = {"seed": seed, "policy": policy_settings(policy), "reference": policy_settings(reference)}
    settings = json.loads(json.dumps(settings, default=str))  # plain JSON values, as they read back from disk
    done = {_key(r): r for r in read_jsonl_records(results)}
    previous_records: list[dict[str, Any]] = []
    if resume_dir is not None and Path(resume_dir).resolve() != out_dir.resolve():
        previous = Path(resume_dir) / RESULTS_FILE
        if not previous.is_file():
            raise FileNotFoundError(f"resume_dir: {previous} does not exist")
        previous_records = read_jsonl_records(previous)
    other = sorted({r.get("policy") for r in [*done.values(), *previous_records]} - {policy.name}, key=str)
    if other:
        raise ValueError(f"{results}: holds results of policy {other}, not {policy.name!r}; use a fresh run dir")
    if done:
        check_fingerprint(out_dir, settings)
    if previous_records:
        check_fingerprint(Path(resume_dir), settings)  # type: ignore[arg-type]
    write_json(out_dir / FINGERPRINT_FILE, {"settings": settings, "sha256": _digest(settings)})
    for rec in previous_records:
        if _key(rec) not in done:
            append_jsonl(results, rec)
            done[_key(rec)] = rec
    if done:
        log.info("resuming: %d of %d runs already done", len(done), len(problems) * orders)

    todo = [(p, r) for p in problems for r in range(orders) if (p.problem_id, r) not in done]

    def record(problem: Problem, order: int, s: int, outcome: Any, ref_outcome: Any) -> None:
        rec = {"problem_id": problem.problem_id, "order": order, "seed": s}
        rec.update(score_outcome(outcome, problem.gold, checker))
        if ref_outcome is not None:
            rec["reference"] = score_outcome(ref_outcome, problem.gold, checker)
        append_jsonl(results, rec)
        done[(problem.problem_id, order)] = rec

    if concurrency == 1:
        tracked = TraceProgress(generator)  # a per-trace bar under the per-problem one
        for problem, order in progress(todo, desc=policy.name, total=len(todo), unit="run"):
            s = order_seed(seed, problem.problem_id, order)
            outcome = policy.run(problem, tracked, s)
            record(problem, order, s, outcome, reference.run(problem, tracked, s) if reference is not None else None)
        tracked.close_bar()
    elif todo:
        run_sync(_run_concurrently(todo, generator, policy, reference, seed, concurrency, record))

    # problem order, then arrival order: the sequential run's order, whatever order the runs completed in
    position = {p.problem_id: i for i, p in enumerate(problems)}
    keys = sorted((k for k in done if k[0] in position and k[1] < orders), key=lambda k: (position[k[0]], k[1]))
    metrics = compute_metrics([done[k] for k in keys])
    write_metrics(metrics, out_dir)
    return metrics


async def _run_concurrently(
    todo: Sequence[tuple[Problem, int]],
    generator: Generator,
    policy: Policy,
    reference: Policy | None,
    seed: int,
    concurrency: int,
    record: Any,
) -> None:
    """``concurrency`` workers take the next (problem, order) run each; a run is the policy then its reference on
    the same seed. The first failure stops the run (the other workers are cancelled)."""
    agen = as_async(generator)
    runs = iter(todo)
    bar = progress_bar(f"{policy.name} (x{concurrency})", total=len(todo), unit="run")

    async def worker() -> None:
        for problem, order in runs:  # one shared iterator: each run is taken by exactly one worker
            s = order_seed(seed, problem.problem_id, order)
            outcome = await policy.arun(problem, agen, s)
            ref_outcome = await reference.arun(problem, agen, s) if reference is not None else None
            record(problem, order, s, outcome, ref_outcome)
            bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))
    finally:
        bar.close()


def order_seed(seed: int, problem_id: str, order: int) -> int:
    """The seed of one arrival order of a problem; order 0 is :func:`problem_seed` (a single-order run's)."""
    return problem_seed(seed, problem_id if order == 0 else f"{problem_id}#order{order}")


def _key(record: Mapping[str, Any]) -> tuple[str, int]:
    return record["problem_id"], int(record.get("order", 0))  # records from before orders existed are order 0


def policy_settings(policy: Policy | None) -> dict[str, Any] | None:
    """What of a policy changes outcomes, as JSON values: its name, numeric settings, prefix rule and judge."""
    if policy is None:
        return None
    out: dict[str, Any] = {"name": policy.name}
    for key in _POLICY_KEYS:
        value = getattr(policy, key, None)
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
    # the rule in force (explicit, the judge's, or the default), not just an explicit one
    prefix = getattr(policy, "rule", None) or getattr(policy, "prefix", None)
    if prefix is not None:
        record = getattr(prefix, "to_record", None)
        out["prefix"] = record() if callable(record) else repr(prefix)
    judge = getattr(policy, "judge", None)
    if judge is not None:
        simple = {k: v for k, v in vars(judge).items() if k in _JUDGE_KEYS and isinstance(v, bool | int | float | str)}
        out["judge"] = {"class": type(judge).__qualname__, **simple}
    aggregation = getattr(policy, "aggregation", None)
    if aggregation is not None:
        simple = {k: v for k, v in vars(aggregation).items() if v is None or isinstance(v, bool | int | float | str)}
        out["aggregation"] = {"class": type(aggregation).__qualname__, **simple}
    return out


def check_fingerprint(run_dir: Path, settings: Mapping[str, Any]) -> None:
    """Stop unless ``run_dir``'s stored settings equal ``settings`` (its results are then reusable)."""
    path = run_dir / FINGERPRINT_FILE
    if not path.is_file():
        raise ValueError(
            f"{run_dir / RESULTS_FILE} has results but no {FINGERPRINT_FILE}, so the settings they were made with "
            "are unknown (a run from before fingerprints): use a fresh run dir, or resume_dir=null"
        )
    stored = json.loads(path.read_text(encoding="utf-8")).get("settings")
    if stored == settings:
        return
    before, after = _flatten(stored or {}), _flatten(settings)
    unset = "<unset>"
    changed = [k for k in sorted(before.keys() | after.keys()) if before.get(k, unset) != after.get(k, unset)]
    shown = ", ".join(f"{k}: {before.get(k, unset)!r} -> {after.get(k, unset)!r}" for k in changed[:6])
    more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    raise ValueError(
        f"{run_dir / RESULTS_FILE} was made with other settings ({shown}{more}); reusing its results would mix "
        "and mislabel them: use the same settings, or a fresh run dir (resume_dir=null)"
    )


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def compute_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Summary per policy and the token reduction of the policy against its reference on the same traces."""
    if not records:
        return {"policies": {}}
    name = records[0]["policy"]
    policies = {name: summarize(records)}
    metrics: dict[str, Any] = {"policy": name, "policies": policies}
    refs = [r["reference"] for r in records if r.get("reference")]
    if refs:
        ref_name = refs[0]["policy"]
        policies[ref_name] = summarize(refs)
        metrics["reference"] = ref_name
        ref_tokens = policies[ref_name]["tokens_total"]
        own = policies[name]["tokens_total"]
        metrics["token_reduction"] = 1 - own / ref_tokens if ref_tokens else None
        policies[name]["token_reduction"] = metrics["token_reduction"]
        policies[ref_name]["token_reduction"] = 0.0
    add_intervals(metrics, records)
    return metrics


def add_intervals(metrics: dict[str, Any], records: Sequence[dict[str, Any]], level: float = 0.95) -> None:
    """Problem-clustered bootstrap intervals (:mod:`deepprune.stats`) into ``metrics``, in place.

    ``metrics["intervals"]`` holds them in full; each policy's summary gets ``problems`` (distinct), ``orders``,
    ``accuracy_low``/``_high``, and, against the reference, ``token_reduction_low``/``_high`` and the paired
    ``accuracy_diff`` with ``accuracy_diff_low``/``_high`` (the policy minus the reference on the same orders).
    """
    from deepprune.stats import clustered_bootstrap_ci, paired_diff_ci, ratio_reduction_ci

    by_problem: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(records):  # a record without a problem id is a problem of its own
        by_problem.setdefault(r.get("problem_id", f"#{i}"), []).append(r)
    runs = list(by_problem.values())
    orders = max(len(rs) for rs in runs)
    name = metrics[POLICY]
    acc = clustered_bootstrap_ci([_mean_of(rs, lambda r: float(r["correct"])) for rs in runs], level)
    out: dict[str, Any] = {"level": level, "problems": len(runs), "orders": orders, "accuracy": acc.to_dict()}
    policies = metrics[POLICIES]
    policies[name] |= {"problems": len(runs), "orders": orders, "accuracy_low": acc.low, "accuracy_high": acc.high}
    ref_name = metrics.get("reference")
    if ref_name is not None and all(r.get("reference") for r in records):
        ref_acc = clustered_bootstrap_ci(
            [_mean_of(rs, lambda r: float(r["reference"]["correct"])) for rs in runs], level
        )
        diff = paired_diff_ci(
            [_mean_of(rs, lambda r: float(r["correct"])) for rs in runs],
            [_mean_of(rs, lambda r: float(r["reference"]["correct"])) for rs in runs],
            level,
        )
        tokens = [sum(r["tokens"] for r in rs) for rs in runs]
        ref_tokens = [sum(r["reference"]["tokens"] for r in rs) for rs in runs]
        out["reference_accuracy"] = ref_acc.to_dict()
        out["accuracy_diff"] = diff.to_dict()
        if sum(ref_tokens) > 0:
            red = ratio_reduction_ci(tokens, ref_tokens, level)
            out["token_reduction"] = red.to_dict()
            policies[name] |= {"token_reduction_low": red.low, "token_reduction_high": red.high}
        policies[name] |= {"accuracy_diff": diff.mean, "accuracy_diff_low": diff.low, "accuracy_diff_high": diff.high}
        policies[ref_name] |= {
            "problems": len(runs), "orders": orders, "accuracy_low": ref_acc.low, "accuracy_high": ref_acc.high,
        }  # fmt: skip
    metrics["intervals"] = out


def _mean_of(runs: Sequence[dict[str, Any]], value: Any) -> float:
    return sum(value(r) for r in runs) / len(runs)


def with_interval_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` plus the table's interval cells: ``accuracy_ci``, ``token_reduction_ci``, ``diff_vs_reference``."""
    out = dict(row)
    if row.get("accuracy_low") is not None:
        out["accuracy_ci"] = f"[{row['accuracy_low']:.3f}, {row['accuracy_high']:.3f}]"
    if row.get("token_reduction_low") is not None:
        out["token_reduction_ci"] = f"[{row['token_reduction_low']:.3f}, {row['token_reduction_high']:.3f}]"
    if row.get("accuracy_diff") is not None:
        low, high = row["accuracy_diff_low"], row["accuracy_diff_high"]
        out["diff_vs_reference"] = f"{row['accuracy_diff']:+.3f} [{low:+.3f}, {high:+.3f}]"
    return out


def metrics_table(metrics: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """The side-by-side Markdown table of one run's metrics (policy first, reference after)."""
    rows = [
        with_interval_columns({POLICY: name, **(extra or {}), **m}) for name, m in metrics.get(POLICIES, {}).items()
    ]
    columns = [*(extra or {}).keys(), *TABLE_COLUMNS]
    return format_table(rows, columns)


try:  # the callback base class; Hydra is a core dependency, the guard only keeps this module importable alone
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[assignment,misc]


class SweepSummary(_HydraCallback):  # type: ignore[misc,valid-type]
    """Hydra callback: one table across all jobs of a multirun (``sweep_summary.md`` in the sweep dir)."""

    def __init__(self, filename: str = "sweep_summary.md") -> None:
        self.filename = filename

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        text = summarize_sweep(sweep_dir)
        if text is None:
            log.warning("sweep summary: no metrics.json under %s", sweep_dir)
            return
        (sweep_dir / self.filename).write_text(text + "\n", encoding="utf-8")
        log.info("sweep summary (%s):\n%s", sweep_dir / self.filename, text)


def summarize_sweep(sweep_dir: str | Path) -> str | None:
    """Read every job's metrics.json (and its Hydra overrides) under ``sweep_dir``; one Markdown table."""
    import json

    import yaml

    rows: list[dict[str, Any]] = []
    keys: list[str] = []
    for metrics_file in sorted(Path(sweep_dir).glob("*/metrics.json"), key=lambda p: _job_num(p.parent.name)):
        job = metrics_file.parent
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        extra = {"job": job.name}
        for item in overrides or []:
            key, _, value = str(item).partition("=")
            extra[key] = value
            if key not in keys:
                keys.append(key)
        metrics = json.loads(metrics_file.read_text())
        for name, m in metrics.get(POLICIES, {}).items():
            rows.append(with_interval_columns({**extra, POLICY: name, **m}))
    if not rows:
        return None
    # an override that names a result column (policy=cons,deepprune) is shown once, as the result's own column
    return format_table(rows, ["job", *(k for k in keys if k not in TABLE_COLUMNS), *TABLE_COLUMNS])


def _job_num(name: str) -> int:
    return int(name) if name.isdigit() else 1 << 30
