"""Tests for deepprune.reporting and the `python -m deepprune.report` entry, on synthetic run directories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepprune import reporting
from deepprune.reporting import (
    Run,
    Table,
    build_report,
    collect_runs,
    find_key,
    flatten,
    mapping_table,
    pareto_front,
    parse_overrides,
    read_csv,
    roc_points,
    run_labels,
    runs_table,
    to_markdown,
    write_csv,
)

REPO = Path(__file__).resolve().parents[1]


def make_job(job_dir: Path, overrides: list[str], metrics: dict, config: dict | None = None) -> Path:
    """A Hydra job directory as the basic launcher leaves it: .hydra/{overrides,config}.yaml + metrics.json."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if config is not None:
        import yaml

        (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job_dir / "metrics.json").write_text(json.dumps(metrics))
    return job_dir


# tau sweep of an online run on two datasets: tokens fall and accuracy moves with tau (Table 3 shape)
TAU_JOBS = [
    (0.25, "aime24", 1000, 0.50, 0.70),
    (0.5, "aime24", 1500, 0.60, 0.80),
    (0.75, "aime24", 2500, 0.70, 0.90),
    (0.25, "aime25", 1200, 0.40, 0.60),
    (0.5, "aime25", 1800, 0.50, 0.75),
    (0.75, "aime25", 2600, 0.45, 0.85),
]


#: the tau sweep's metrics use other names than deepprune's writers: a user's files, read with quantities=
TAU_SWEEP_KEYS = {"tokens": ("tokens.total", "*tokens*"), "pass_at_k": ("pass@k",)}


@pytest.fixture
def tau_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "multiruns" / "2025-01-01_00-00-00"
    for i, (tau, ds, tokens, acc, pk) in enumerate(TAU_JOBS):
        make_job(
            sweep / str(i),
            [f"tau={tau}", f"problems={ds}", "paths.log_dir=/somewhere", "seed=1"],
            {"policy": "deepprune", "tokens": {"total": tokens, "judge_input": 10}, "accuracy": acc, "pass@k": pk},
            config={"tau": tau, "seed": 1, "task_name": "online"},
        )
    # sweep-level leftovers Hydra writes must not confuse collection
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


@pytest.fixture
def judge_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "train_sweep"
    grid = [("ce", "plain", 0.71), ("ce", "oversample", 0.65), ("focal", "plain", 0.74), ("focal", "oversample", 0.77)]
    labels = [1, 1, 1, 0, 0, 1, 0, 0]
    for i, (loss, sampler, auroc) in enumerate(grid):
        job = make_job(
            sweep / str(i),
            [f"loss={loss}", f"sampler={sampler}"],
            {"test": {"auroc": auroc, "tnr_at_fnr": auroc - 0.2}, "per_model": {"GPT-4": {"auroc": auroc}}},
        )
        scores = [0.9, 0.8, 0.3 + 0.1 * i, 0.2, 0.1, 0.6, 0.35, 0.05]
        (job / "scores.jsonl").write_text(
            "".join(json.dumps({"score": s, "label": y}) + "\n" for s, y in zip(scores, labels))
        )
    return sweep


# ---------------------------------------------------------------------------------------------------
# pure helpers


def test_flatten_nested_dicts_to_dotted_scalars():
    nested = {"test": {"auroc": 0.8, "per": {"m": 1}}, "curve": [1, 2], "name": "x", "none": None}
    assert flatten(nested) == {"test.auroc": 0.8, "test.per.m": 1, "name": "x", "none": None}


def test_parse_overrides_strips_prefixes_and_ignores_paths():
    got = parse_overrides(["+a.b=1", "++c=x,y", "~d", "paths.log_dir=/x", "hydra.run.dir=y", "tau=0.5"])
    assert got == {"a.b": "1", "c": "x,y", "d": "<deleted>", "tau": "0.5"}


def test_find_key_pattern_order_then_shortest():
    keys = ["tokens.judge_input", "tokens.total", "accuracy", "online.pass@k"]
    assert find_key(keys, ["tokens.total", "*tokens*"]) == "tokens.total"
    assert find_key(keys, ["*tokens*"]) == "tokens.total"  # shortest match among equals
    assert find_key(keys, ["*pass@k*"]) == "online.pass@k"
    assert find_key(keys, ["*auroc*"]) is None


def test_roc_points_matches_pairwise_auroc():
    scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.3]
    labels = [1, 1, 0, 1, 0, 1, 0, 0]
    fpr, tpr, auc = roc_points(scores, labels)
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    # AUROC = P(score_pos > score_neg) + 0.5 P(tie), computed independently
    expected = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc == pytest.approx(expected)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert len(fpr) == 8  # the tie at 0.3 is one point: 7 distinct scores + origin
    with pytest.raises(ValueError, match="both classes"):
        roc_points([0.1, 0.2], [1, 1])


def test_pareto_front_literal():
    points = [(100, 0.5), (200, 0.7), (150, 0.4), (300, 0.7), (50, 0.3)]
    assert pareto_front(points) == [4, 0, 1]


def test_markdown_literal():
    table = Table(["run", "tau", "acc", "ok"], [["0", 0.5, 0.123456, True], ["1", None, 1.0, False]])
    assert to_markdown(table) == (
        "| run | tau | acc | ok |\n|---|---|---|---|\n| 0 | 0.5000 | 0.1235 | true |\n| 1 |  | 1.0000 | false |\n"
    )


def test_csv_round_trip(tmp_path: Path):
    table = Table(["run", "a", "b", "c"], [["x|y", 0.1 + 0.2, 3, None], ["z", 1e-12, -4, True]])
    back = read_csv(write_csv(table, tmp_path / "t.csv"))
    assert back.columns == table.columns
    assert back.rows == table.rows  # full float precision, ints, None and bools survive


def test_mapping_table_keeps_dotted_model_names():
    table = mapping_table({"GPT-3.5": {"ratio": 0.3, "n": {"pos": 2}}, "average": {"ratio": 0.4}, "mean": 0.1})
    assert table.columns == ["model", "ratio", "n.pos"]
    assert table.rows == [["GPT-3.5", 0.3, 2], ["average", 0.4, None]]


# ---------------------------------------------------------------------------------------------------
# collecting and tabulating runs


def test_collect_runs_multirun_in_job_order(tau_sweep: Path):
    # 12 jobs so that natural order (2 before 10) differs from string order
    for i in range(6, 12):
        make_job(tau_sweep / str(i), [f"tau={i}"], {"accuracy": i / 100})
    runs = collect_runs(tau_sweep)
    assert [r.name for r in runs] == [str(i) for i in range(12)]
    assert runs[0].overrides == {"tau": "0.25", "problems": "aime24", "seed": "1"}  # paths.* dropped
    assert runs[0].metrics["tokens.total"] == 1000
    assert runs[0].config["task_name"] == "online"


def test_runs_table_literal_values(tau_sweep: Path):
    runs = collect_runs(tau_sweep)
    table = runs_table(runs, metrics=["accuracy", "tokens.*"])
    # seed is the same in every job: not a column; metric columns in pattern order
    assert table.columns == ["run", "tau", "problems", "accuracy", "tokens.total", "tokens.judge_input"]
    assert table.rows[0] == ["0", 0.25, "aime24", 0.5, 1000, 10]
    assert table.rows[5] == ["5", 0.75, "aime25", 0.45, 2600, 10]
    assert run_labels(runs)[4] == "tau=0.5 problems=aime25"


def test_single_run_dir_and_policy_subdirs(tmp_path: Path):
    run_dir = make_job(tmp_path / "run", ["n=8"], {"note": "top"})
    for policy, acc in [("cons", 0.6), ("deepprune", 0.7)]:
        (run_dir / policy).mkdir()
        (run_dir / policy / "metrics.json").write_text(json.dumps({"accuracy": acc, "tokens": 10}))
    runs = collect_runs(run_dir)
    assert [r.name for r in runs] == [".", "cons", "deepprune"]
    assert all(r.overrides == {"n": "8"} and r.run_dir == run_dir for r in runs)
    assert run_labels(runs) == [".", "cons", "deepprune"]  # n=8 is common to all: not in labels


def test_collect_runs_errors_name_the_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        collect_runs(tmp_path)
    bad = make_job(tmp_path / "0", ["a=1"], {})
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"0/metrics.json: not valid JSON"):
        collect_runs(tmp_path)


def test_run_get_prefers_metrics_then_overrides_then_config():
    run = Run(path=Path("."), name=".", overrides={"tau": "0.5"}, metrics={"acc": 1.0}, config={"tau": 0.9, "k": 2})
    assert (run.get("acc"), run.get("tau"), run.get("k"), run.get("zzz", 7)) == (1.0, "0.5", 2, 7)


def test_quantities_found_by_patterns(tau_sweep: Path):
    run = collect_runs(tau_sweep)[1]
    # by default only the writers' exact keys: "tokens.total" and "pass@k" are not deepprune's names
    assert set(reporting.quantities(run)) == {"tau", "tau_key", "accuracy", "accuracy_key", "policy", "policy_key"}
    q = reporting.quantities(run, TAU_SWEEP_KEYS)
    assert (q["tau"], q["tokens"], q["accuracy"], q["pass_at_k"], q["policy"]) == (0.5, 1500.0, 0.6, 0.8, "deepprune")
    assert q["tokens_key"] == "tokens.total"


# ---------------------------------------------------------------------------------------------------
# the whole report


def _png_ok(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 5000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_report_tau_sweep(tau_sweep: Path, tmp_path: Path):
    out = tmp_path / "out"
    written = build_report(tau_sweep, out_dir=out, title="Table 3", keys=TAU_SWEEP_KEYS)
    assert set(written) == {"csv", "pareto", "tau", "versions", "markdown"}  # no ROC data in online runs
    assert _png_ok(written["tau"]) and _png_ok(written["pareto"])
    table = read_csv(out / "report.csv")
    assert table.column("tau") == [0.25, 0.5, 0.75, 0.25, 0.5, 0.75]
    assert table.column("tokens.total") == [1000, 1500, 2500, 1200, 1800, 2600]
    md = (out / "report.md").read_text()
    assert "| 2 | 0.7500 | aime24 | deepprune | 2500 | 10 | 0.7000 | 0.9000 |" in md
    assert "![tau trade-off](report_tau.png)" in md
    versions = json.loads((out / "report_versions.json").read_text())
    assert versions["deepprune"] and "torch" in versions


def test_build_report_roc_overlay_from_scores(judge_sweep: Path):
    written = build_report(judge_sweep, plots=["roc", "pareto", "tau"])
    assert _png_ok(written["roc"])  # written into the sweep dir itself
    assert "pareto" not in written and "tau" not in written  # no tokens or tau in judge runs
    table = read_csv(judge_sweep / "report.csv")
    assert table.columns[:3] == ["run", "loss", "sampler"]
    assert table.column("test.auroc") == [0.71, 0.65, 0.74, 0.77]
    assert table.column("per_model.GPT-4.auroc") == [0.71, 0.65, 0.74, 0.77]


def test_roc_curves_from_metrics_points(tmp_path: Path):
    run_dir = make_job(tmp_path / "r", [], {"auroc": 0.75, "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1]}})
    curves = reporting.load_roc_curves(collect_runs(run_dir)[0])
    assert curves == {"roc": ([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])}


def test_report_entry_runs_as_hydra_app(tau_sweep: Path, tmp_path: Path):
    out = tmp_path / "entry_out"
    proc = subprocess.run(
        [sys.executable, "-m", "deepprune.report", f"sweep_dir={tau_sweep}", f"out_dir={out}",
         f"paths.log_dir={tmp_path / 'logs'}", "plots=[tau]"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_csv(out / "report.csv").column("accuracy") == [0.5, 0.6, 0.7, 0.4, 0.5, 0.45]
    assert _png_ok(out / "report_tau.png") and not (out / "report_pareto.png").exists()


def test_report_entry_missing_dir_fails_clearly(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "deepprune.report", f"sweep_dir={tmp_path / 'nope'}", f"paths.log_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "is not a directory" in proc.stderr


# ---------------------------------------------------------------------------------------------------
# the shapes the entries really write: online's policies + reference, analyze's models


def online_metrics(tokens: int, acc: float, ref_tokens: int = 4000, ref_acc: float = 0.6) -> dict:
    """metrics.json as deepprune.online.runner.compute_metrics writes it."""
    return {
        "policy": "deepprune",
        "policies": {
            "deepprune": {"problems": 3, "accuracy": acc, "tokens_total": tokens, "tokens_mean": tokens / 3,
                          "pass_at_k": acc + 0.1, "token_reduction": 1 - tokens / ref_tokens},
            "cons@18": {"problems": 3, "accuracy": ref_acc, "tokens_total": ref_tokens, "tokens_mean": ref_tokens / 3,
                        "pass_at_k": None, "token_reduction": 0.0},
        },
        "reference": "cons@18",
        "token_reduction": 1 - tokens / ref_tokens,
    }  # fmt: skip


def test_online_policies_split_into_rows(tmp_path: Path):
    sweep = tmp_path / "sweep"
    for i, (tau, tokens, acc) in enumerate([(0.5, 1000, 0.5), (0.75, 2000, 0.6)]):
        make_job(sweep / str(i), [f"tau={tau}"], online_metrics(tokens, acc))
    runs = collect_runs(sweep)
    assert [r.name for r in runs] == ["0:deepprune", "0:cons@18", "1:deepprune", "1:cons@18"]
    table = runs_table(runs, metrics=["policy", "accuracy", "tokens_total", "token_reduction"])
    assert table.columns == ["run", "tau", "policy", "accuracy", "tokens_total", "token_reduction"]
    assert table.rows[0] == ["0:deepprune", 0.5, "deepprune", 0.5, 1000, 0.75]
    assert table.rows[3] == ["1:cons@18", 0.75, "cons@18", 0.6, 4000, 0.0]
    points = reporting.tradeoff_points(runs)
    assert [(p["tau"], p["policy"], p["tokens"], p["token_reduction"]) for p in points] == [
        (0.5, "deepprune", 1000, 0.75), (0.5, "cons@18", 4000, 0.0),
        (0.75, "deepprune", 2000, 0.5), (0.75, "cons@18", 4000, 0.0),
    ]  # fmt: skip
    assert [p["group"] for p in points] == ["deepprune", "cons@18", "deepprune", "cons@18"]
    # the cons@18 reference repeated beside every tau is one Pareto point, labelled by policy
    assert [p["label"] for p in reporting.pareto_points(points)] == [
        "tau=0.5 deepprune",
        "cons@18 (same in 2 runs)",
        "tau=0.75 deepprune",
    ]
    written = build_report(sweep)
    assert _png_ok(written["tau"]) and _png_ok(written["pareto"])


def test_run_labels_do_not_repeat_a_part_an_override_names(tmp_path: Path):
    sweep = tmp_path / "sweep"
    for job, policy in enumerate(["deepprune", "oracle"]):
        metrics = {"policies": {policy: {"accuracy": 1}, "cons@4": {"accuracy": 1}}}
        make_job(sweep / str(job), [f"policy={policy}"], metrics)
    assert reporting.run_labels(collect_runs(sweep)) == [
        "policy=deepprune",
        "policy=deepprune cons@4",
        "policy=oracle",
        "policy=oracle cons@4",
    ]


def test_token_reduction_against_baseline_when_runs_lack_it(tmp_path: Path):
    sweep = tmp_path / "s"
    for i, (policy, tokens) in enumerate([("deepprune", 500), ("cons@8", 2000), ("deepconf_low", 1000)]):
        make_job(sweep / str(i), [f"policy={policy}"], {"policy": policy, "tokens_total": tokens, "accuracy": 0.5})
    points = reporting.tradeoff_points(collect_runs(sweep))
    assert [p["token_reduction"] for p in points] == [0.75, 0.0, 0.5]


def test_analyze_models_split_into_rows(tmp_path: Path):
    from deepprune.redundancy import RedundancyRow, to_metrics

    rows = [RedundancyRow("GPT-3.5", 10, 3, 0.3, 5, 0, 1), RedundancyRow("PaLM 2", 6, 6, 1.0, 4, 1, 1)]
    rows.append(RedundancyRow("Average", 16, 9, 9 / 16, 9, 1, 1))
    run_dir = make_job(tmp_path / "run", [], to_metrics(rows))
    table = runs_table(collect_runs(run_dir), metrics=["model", "total_pairs", "ratio", "average.ratio"])
    assert table.rows == [[".:GPT-3.5", "GPT-3.5", 10, 0.3, 0.5625], [".:PaLM 2", "PaLM 2", 6, 1.0, 0.5625]]
    assert runs_table(collect_runs(run_dir, split={}), metrics=["models.*.ratio"]).rows == [[".", 0.3, 1.0]]
    # the report draws them beside the paper's Table 4 ratios
    assert reporting.redundancy_ratios(collect_runs(run_dir)) == {"GPT-3.5": 0.3, "PaLM 2": 1.0, "Average": 0.5625}
    written = reporting.build_report(run_dir, tmp_path / "out", plots=["redundancy", "pareto"])
    assert _png_ok(written["redundancy"]) and "pareto" not in written
    assert "report_redundancy.png" in written["markdown"].read_text()


def test_plot_redundancy_and_latest_run_dir(tmp_path: Path):
    png = reporting.plot_redundancy({"A": 0.4, "Average": 0.45}, tmp_path / "r.png", reference={"X": 0.9})
    assert _png_ok(png)
    for ts in ["2025-01-01_00-00-00", "2025-01-02_00-00-00"]:
        (tmp_path / "logs" / "analyze" / "runs" / ts).mkdir(parents=True)
    assert reporting.latest_run_dir("analyze", tmp_path / "logs").name == "2025-01-02_00-00-00"
    with pytest.raises(FileNotFoundError, match="python -m deepprune.online"):
        reporting.latest_run_dir("online", tmp_path / "logs")


def test_package_versions_records_installed_and_absent():
    versions = reporting.package_versions(["pytest", "surely-not-installed-pkg"])
    assert versions["pytest"] == pytest.__version__
    assert versions["surely-not-installed-pkg"] is None and versions["python"].count(".") == 2


def test_k_sweep_plots_auroc_against_the_swept_number(tmp_path: Path):
    """Figure 6's view: one numeric override varies (data.token_k), each job has AUROC and its reference."""
    sweep = tmp_path / "k"
    for job, (k, auroc, ref) in enumerate([(256, 0.64, 0.63), (64, 0.61, 0.6), (128, 0.66, 0.62)]):
        make_job(
            sweep / str(job),
            ["experiment=fig6", f"data.token_k={k}"],
            {"test/auroc": auroc, "test/auroc_reference": ref},
        )
    points = reporting.sweep_points(collect_runs(sweep))
    assert points == {
        "x_key": "data.token_k",
        "x": [256.0, 64.0, 128.0],
        "auroc": [0.64, 0.61, 0.66],
        "reference": [0.63, 0.6, 0.62],
    }
    written = reporting.build_report(sweep, tmp_path / "out", plots=["sweep", "auroc"])
    assert _png_ok(written["sweep"]) and "report_sweep.png" in written["markdown"].read_text()
    assert _png_ok(written["auroc"])  # the per-run bars need no numeric sweep
    # two overrides varying, or a non-numeric one: no single x axis, no plot
    make_job(sweep / "3", ["experiment=other", "data.token_k=32"], {"test/auroc": 0.5})
    assert reporting.sweep_points(collect_runs(sweep)) is None


# ---------------------------------------------------------------------------------------------------
# the default keys are the writers' own: what deepprune writes, the report finds without quantities=


def problem_record(policy: str, correct: bool, tokens: int, pass_at_k: bool | None) -> dict:
    """One results.jsonl record as accounting.score_outcome writes it (the fields summarize reads)."""
    return {
        "policy": policy, "correct": correct, "tokens": tokens, "prefix_tokens": tokens // 4,
        "continuation_tokens": tokens - tokens // 4, "judge_calls": 3, "judge_input_tokens": 30,
        "pass_at_k": pass_at_k, "num_clusters": 2 if pass_at_k is not None else None,
    }  # fmt: skip


def test_online_metrics_written_by_the_runner_are_found_by_the_default_keys(tmp_path: Path):
    from deepprune.online.runner import compute_metrics

    for job, tau in enumerate([0.5, 0.75]):
        records = []
        for correct, tokens in [(True, 100 * (job + 1)), (False, 300)]:
            rec = problem_record("deepprune", correct, tokens, pass_at_k=True)
            rec["reference"] = problem_record("cons@4", True, 800, pass_at_k=None)
            records.append(rec)
        make_job(tmp_path / str(job), [f"tau={tau}"], compute_metrics(records))
    runs = collect_runs(tmp_path)
    q = reporting.quantities(runs[2])  # job 1, the deepprune part
    assert (q["tau"], q["tokens"], q["accuracy"], q["pass_at_k"], q["policy"]) == (0.75, 500.0, 0.5, 1.0, "deepprune")
    assert q["token_reduction"] == pytest.approx(1 - 500 / 1600)
    assert (q["tokens_key"], q["accuracy_key"], q["tau_key"]) == ("tokens_total", "accuracy", "tau")
    points = reporting.tradeoff_points(runs)
    assert [(p["tau"], p["policy"], p["tokens"]) for p in points] == [
        (0.5, "deepprune", 400), (0.5, "cons@4", 1600), (0.75, "deepprune", 500), (0.75, "cons@4", 1600)
    ]  # fmt: skip


def test_judge_outputs_written_by_train_are_found_by_the_default_keys(tmp_path: Path):
    from deepprune.judge.metrics import judge_metrics
    from deepprune.judge.scores import TEST_AUROC, TEST_AUROC_REFERENCE, score_record, write_scores

    scores, ref, labels = [0.9, 0.7, 0.6, 0.3, 0.2], [0.5, 0.6, 0.4, 0.5, 0.1], [1, 0, 1, 0, 0]
    for job, k in enumerate([32, 64]):
        job_dir = make_job(
            tmp_path / str(job),
            [f"data.token_k={k}"],
            {TEST_AUROC: judge_metrics(scores, labels)["auroc"] - job / 10, TEST_AUROC_REFERENCE: 0.5},
        )
        records = [
            score_record(i, y, s, model="m", score_reference=r) for i, (s, r, y) in enumerate(zip(scores, ref, labels))
        ]
        write_scores(job_dir / "scores.jsonl", records)
    runs = collect_runs(tmp_path)
    curves = reporting.load_roc_curves(runs[0])
    assert curves["all"].auroc == pytest.approx(judge_metrics(scores, labels)["auroc"])  # 5/6
    assert curves["reference"].auroc == pytest.approx(judge_metrics(ref, labels)["auroc"])
    assert reporting.sweep_points(runs) == {
        "x_key": "data.token_k", "x": [32.0, 64.0], "auroc": [pytest.approx(5 / 6), pytest.approx(5 / 6 - 0.1)],
        "reference": [0.5, 0.5],
    }  # fmt: skip
    assert list(reporting.roc_curves(runs)) == ["data.token_k=32", "data.token_k=32 reference", "data.token_k=64"]


def test_build_report_rejects_unknown_plots_and_bad_score_files(judge_sweep: Path):
    with pytest.raises(ValueError, match=r"unknown plot\(s\) \['rocs'\]; the report draws \['roc', 'pareto'"):
        build_report(judge_sweep, plots=["rocs"])
    assert [spec.name for spec in reporting.PLOTS] == ["roc", "pareto", "tau", "sweep", "auroc", "redundancy"]
    (judge_sweep / "1" / "scores.jsonl").write_text('{"p_same": 0.5, "label": 1}\n')
    with pytest.raises(ValueError, match=r"1/scores.jsonl:1: needs a numeric 'score'"):
        build_report(judge_sweep, plots=["roc"])


def test_reporting_imports_without_torch_or_matplotlib():
    code = "import sys, deepprune.reporting; print(sorted({'torch', 'matplotlib', 'lightning'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
