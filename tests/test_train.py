"""The train entry: fast_dev_run for every loss x sampler, a short full run (metrics.json, roc.png, export),
resume from a checkpoint, config errors, and one multirun sweep through the real CLI.

Runs in-process on Hydra-composed real configs, shrunk LHT-style: the tiny classifier head built in the test
session cache, synthetic traces (`synthetic_traces` below) and an exact-match answer checker, so no test waits
on the math-verify worker.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ExactChecker
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf import open_dict

from deepprune.runtime import CONF_DIR
from deepprune.traces import Trace
from deepprune.train import train

TESTS_DIR = Path(__file__).resolve().parent


def synthetic_traces(models=None, max_problems=None):
    """3 models x 10 problems x 4 traces; answers 0/1/0/1 per group, with a word that gives the answer away."""
    return [
        Trace(
            problem_id=f"p{p}",
            model=m,
            sample_id=s,
            text=f"first we count the cases so the answer is {'even' if s % 2 else 'odd'} then we check p{p}",
            answer=str(s % 2),
            finished=True,
        )
        for p in range(10)
        for m in ("m1", "m2", "m3")
        for s in range(4)
    ]


def separable_traces(models=None, max_problems=None):
    """3 models x 12 problems x 4 traces; trace 3 of each group has another answer and says so in its text.

    A pair is "different" exactly when it holds the word "oops": separable from the bag of words alone.
    """
    return [
        Trace(
            problem_id=f"p{p}",
            model=m,
            sample_id=s,
            text=f"we try case {s} of problem {p} and " + ("oops it differs" if s == 3 else "the answer is zero"),
            answer="1" if s == 3 else "0",
            finished=True,
        )
        for p in range(12)
        for m in ("m1", "m2", "m3")
        for s in range(4)
    ]


class OverlapScorer:
    """A cheap reference scorer: Jaccard overlap of the word sets."""

    def score(self, pairs):
        import numpy as np

        return np.array(
            [len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split())) for a, b in pairs]
        )


BASE = [
    "data=champ",  # one source: the tests hand it synthetic traces
    "~blend",  # the default's blend has its own tests (test_blend.py)
    "trainer.max_epochs=1",
    "model=tiny_classifier",
    "data.test_models=[m3]",
    "data.val_fraction=0.2",
    "data.test_fraction=0.3",
    "data.max_problems=null",
    "data.max_pairs=null",
    "data.batch_size=4",
    "data.eval_batch_size=8",
    "data.checker={_target_: helpers.ExactChecker}",
    "module.reference_scorer=null",
    "data.label_cache=null",
    "data.group_batch_traces=null",
]


def make_cfg(out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):

        def key(o: str) -> str:
            return o.split("=", 1)[0].lstrip("~")  # ~blend in BASE gives way to a test's blend=...

        keys = {key(o) for o in overrides}
        base = [o for o in BASE if key(o) not in keys]  # a test's own value wins
        cfg = compose("train", overrides=[*base, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.data.traces = {"_target_": "test_train.synthetic_traces", "_partial_": True}
        cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


@pytest.mark.parametrize("loss", ["ce", "focal"])
@pytest.mark.parametrize("sampler", ["plain", "oversample"])
def test_fast_dev_run_every_loss_and_sampler(tmp_path, loss, sampler):
    cfg = make_cfg(tmp_path, f"loss={loss}", f"sampler={sampler}", "trainer.fast_dev_run=true", "export=false")
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["per_model"]) == {"m3", "average"}
    assert metrics["per_model"]["m3"]["n"] == 8  # one test batch
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_short_run_tests_best_checkpoint_with_reference_and_exports(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "truncation=tokens",
        "truncation.k=16",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "+module.reference_scorer={_target_: test_train.OverlapScorer, _partial_: true}",
    )
    best = train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert isinstance(best, float) and best == pytest.approx(metrics["best_val/auroc_source_mean"])
    assert Path(metrics["best_checkpoint"]).is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    for key in ("test/auroc", "test/tnr_at_fnr", "test/auroc_reference", "test/tnr_at_fnr_reference"):
        assert 0.0 <= metrics[key] <= 1.0
    assert (
        metrics["per_model_reference"]["m3"]["n"] == metrics["per_model"]["m3"]["n"] == 3 * 6
    )  # 3 test problems x C(4, 2)
    assert metrics["test/auroc"] == pytest.approx(metrics["per_model"]["average"]["auroc"])
    assert metrics["data_counts"]["test"]["same"] == 3 * 2
    assert metrics["global_steps"] == 3
    record = json.loads((tmp_path / "export" / "deepprune_judge.json").read_text())
    # the rule counts with the judge's own tokenizer, and says so portably (no machine path)
    assert record["truncation"] == {"kind": "tokens", "k": 16, "tokenizer": "judge"}
    # the export lists the problems the judge trained or validated on: 7 of 10, none of the 3 test problems
    from deepprune.pairs import split_by_problem

    _, _, test = split_by_problem(synthetic_traces(), 0.2, 0.3, 42)
    test_ids = {t.problem_id for t in test}
    assert len(test_ids) == 3 and len(record["seen_problems"]) == 7
    assert set(record["seen_problems"]) == {f"p{i}" for i in range(10)} - test_ids
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    # scores.jsonl: one line per test pair; the report's ROC from it has the AUROC torchmetrics logged
    from deepprune import reporting

    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 18 and sum(r["label"] for r in rows) == 6 and {r["model"] for r in rows} == {"m3"}
    curves = reporting.load_roc_curves(reporting.load_run(tmp_path / "metrics.json"))
    assert set(curves) == {"all", "reference"}
    assert reporting._auc(*curves["all"]) == pytest.approx(metrics["test/auroc"], abs=1e-6)
    assert reporting._auc(*curves["reference"]) == pytest.approx(metrics["test/auroc_reference"], abs=1e-6)


def test_resume_from_checkpoint_continues_training(tmp_path):
    shrink = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "export=false"]
    first = tmp_path / "first"
    train(make_cfg(first, "trainer.max_epochs=1", *shrink))
    ckpt = first / "checkpoints" / "last.ckpt"
    assert json.loads((first / "metrics.json").read_text())["global_steps"] == 2
    second = tmp_path / "second"
    train(make_cfg(second, "trainer.max_epochs=2", f"ckpt_path={ckpt}", *shrink))
    # resumed at step 2: one more epoch of 2 batches, not two
    assert json.loads((second / "metrics.json").read_text())["global_steps"] == 4


def test_unknown_loss_lists_the_choices(tmp_path):
    with pytest.raises(ConfigCompositionException, match=r"(?s)nope.*Available options.*ce.*focal"):
        make_cfg(tmp_path, "loss=nope")


def test_one_class_test_split_stops_before_training(tmp_path):
    cfg = make_cfg(tmp_path, "data.test_fraction=0.3", "data.max_pairs={test: 1}", "trainer.fast_dev_run=true")
    with pytest.raises(ValueError, match=r"test: 1 pairs \((1 same, 0|0 same, 1) different\)"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.json").exists()


def test_sweep_overrides_compose(tmp_path):
    # the sweep the docs promise: every combination composes, and `truncation` picks the prefix rule
    for loss in ("ce", "focal"):
        for sampler in ("plain", "oversample"):
            for trunc in ("tokens", "words"):
                cfg = make_cfg(tmp_path, f"loss={loss}", f"sampler={sampler}", f"truncation={trunc}")
                assert cfg.loss._target_.endswith("CrossEntropyLoss" if loss == "ce" else "FocalLoss")
                assert cfg.sampler._target_.endswith(sampler)
                assert cfg.truncation._target_.endswith({"tokens": "TokenPrefix", "words": "WordPrefix"}[trunc])
    assert make_cfg(tmp_path, "truncation=words", "truncation.k=3").truncation.k == 3


@pytest.mark.slow
def test_multirun_sweep_via_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    env["DEEPPRUNE_LOG_DIR"] = str(tmp_path / "logs")
    cmd = [
        sys.executable, "-m", "deepprune.train", "-m", "loss=ce,focal", "sampler=oversample",
        "model=tiny", "model.prompt.label_words=[yes,no]", "trainer.fast_dev_run=true", "export=false", "~logger",
        "data.traces={_target_: test_train.synthetic_traces, _partial_: true}",
        *[o for o in BASE if not o.startswith("model=")],
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "logs" / "train" / "multiruns").glob("*/[0-9]*"))
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert "test/auroc" in json.loads((job / "metrics.json").read_text())


def test_pipeline_learns_separable_pairs(tmp_path):
    """The whole path (labels, column 1 = same, padding, train mode, warmup schedule, best checkpoint, export)
    can fit: a tiny random classifier reaches AUROC ~1 on a separable pair set, train and held-out model alike."""
    import numpy as np

    from deepprune.judge.metrics import judge_metrics
    from deepprune.judge.scorers import load_scorer
    from deepprune.pairs import build_pairs

    cfg = make_cfg(tmp_path, "optimizer.lr=1e-3", "module.new_layer_lr=null", "trainer.max_epochs=5")
    with open_dict(cfg):
        cfg.data.traces = {"_target_": "test_train.separable_traces", "_partial_": True}
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data_counts"]["train"]["different"] > 0 and metrics["global_steps"] >= 50
    assert metrics["test/auroc"] > 0.95 and metrics["best_val/auroc_source_mean"] > 0.95
    pairs = build_pairs(separable_traces(), checker=ExactChecker()).pairs
    scores = load_scorer(tmp_path / "export").score([(p.a.text, p.b.text) for p in pairs])
    labels = np.array([p.label for p in pairs])
    assert judge_metrics(scores, labels)["auroc"] > 0.95  # every model and problem, training ones included
    assert scores[labels == 1].mean() > scores[labels == 0].mean()  # column 1 is "same": not inverted


def test_siamese_group_batches_run(tmp_path):
    cfg = make_cfg(
        tmp_path, "model=tiny_siamese", "data.group_batch_traces=3", "data.group_batches_per_epoch=5",
        "truncation.k=24",
    )  # fmt: skip
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_steps"] == 5 and 0.0 <= metrics["test/auroc"] <= 1.0
    record = json.loads((tmp_path / "export" / "deepprune_judge.json").read_text())
    assert record["kind"] == "classifier"
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model_type"] == "deepprune_siamese_bert"


def test_group_batches_refuse_a_sampler(tmp_path):
    cfg = make_cfg(tmp_path, "sampler=oversample", "data.group_batch_traces=3", "trainer.fast_dev_run=true")
    with pytest.raises(ValueError, match="group_batch_traces builds its own"):
        train(cfg)


def _write_trace_file(path: Path, traces) -> Path:
    from deepprune.traces import write_traces

    write_traces(path, traces)
    return path


def test_data_jsonl_trains_from_a_trace_file(tmp_path):
    """`data=jsonl` reads a user's trace file through the real JSONL source and trains on it."""
    trace_file = _write_trace_file(tmp_path / "traces.jsonl", synthetic_traces())
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*BASE, "data=jsonl", f"data.traces.path={trace_file}", "trainer.max_epochs=1"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    assert cfg.data.traces._target_ == "deepprune.sources.jsonl.load_trace_file"
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 10 problems x 4 traces of the held-out model m3, minus the problems drawn for train/val
    assert metrics["data_counts"]["test"]["same"] + metrics["data_counts"]["test"]["different"] > 0
    assert 0.0 <= metrics["test/auroc"] <= 1.0


def test_data_jsonl_bad_line_stops_before_training(tmp_path):
    trace_file = _write_trace_file(tmp_path / "traces.jsonl", synthetic_traces())
    lines = trace_file.read_text().splitlines()
    lines[6] = '{"problem_id": "p1", "model": "m1"}'  # no `text`
    trace_file.write_text("\n".join(lines) + "\n")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=[*BASE, "data=jsonl", f"data.traces.path={trace_file}"], return_hydra_config=True
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    with pytest.raises(ValueError, match=r"traces\.jsonl.*7.*text"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unique_rows_drops_distributed_padding_repeats():
    """Rows gathered from 2 ranks over 5 pairs: DistributedSampler padded rank 1 with a repeat of pair 0."""
    from deepprune.judge.module import unique_rows

    rank0 = [(0, 0.9, 1, "m", ("a", "b")), (2, 0.1, 0, "m", ("c", "d")), (4, 0.4, 0, "m", ("e", "f"))]
    rank1 = [(1, 0.8, 1, "m", ("g", "h")), (3, 0.3, 0, "m", ("i", "j")), (0, 0.9, 1, "m", ("a", "b"))]
    assert unique_rows(rank0 + rank1) == [
        (0.9, 1, "m", ("a", "b")),
        (0.8, 1, "m", ("g", "h")),
        (0.1, 0, "m", ("c", "d")),
        (0.3, 0, "m", ("i", "j")),
        (0.4, 0, "m", ("e", "f")),
    ]
    assert unique_rows([(-1, 0.5, 1, "m", ("x", "y"))] * 2) == [(0.5, 1, "m", ("x", "y"))] * 2


@pytest.mark.slow
@pytest.mark.parametrize("batches", ["random", "group"])
def test_ddp_on_two_cpu_processes_scores_every_test_pair_once(tmp_path, batches):
    """A real Lightning DDP run (2 CPU processes, gloo) through the CLI, with random or group training batches
    (sharded per rank): 17 test pairs split over 2 ranks (one padded repeat) are gathered, scored once each, and
    written once by rank 0."""
    group = ["data.group_batch_traces=3", "data.group_batches_per_epoch=4"] if batches == "group" else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    env["DEEPPRUNE_LOG_DIR"] = str(tmp_path / "logs")
    cmd = [
        sys.executable, "-m", "deepprune.train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.precision=32-true", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "data.traces={_target_: test_train.synthetic_traces, _partial_: true}", "~logger",
        *[o for o in BASE if not o.startswith("data.max_pairs")], "data.max_pairs={train: null, val: null, test: 17}",
        *group,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["per_model"]["m3"]["n"] == 17 and metrics["data_counts"]["test"]["pairs"] == 17
    rows = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 17 and sum(r["label"] for r in rows) == metrics["data_counts"]["test"]["same"]
    assert metrics["global_steps"] == 2 and (run / "export" / "deepprune_judge.json").is_file()
