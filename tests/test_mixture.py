"""A weighted mixture of trace sources (`deepprune.judge.mixture`, `data=mixture`): the drawn shares follow the
weights, a held-out source stays wholly on the val/test side, per-source metrics equal an independent AUROC and
their problem-bootstrap intervals an independent loop, bad sources fail by key before the model loads, optional
sources are skipped, and the single-source path is unchanged.
"""

import json
import logging
import math
from collections import Counter
from functools import partial

import pytest
from helpers import ExactChecker
from test_datamodule import CharHead

from deepprune.judge.datamodule import PairDataModule
from deepprune.judge.metrics import per_source_metrics
from deepprune.judge.samplers import GroupBatchSampler, SourceWeightedSampler
from deepprune.traces import Trace
from deepprune.train import train
from deepprune.truncation import WordPrefix


def source_traces(model, n_problems=10, per_group=4, tag=""):
    """``n_problems`` problems ("0", "1", ...: ids that collide across sources, as the dev sets' do) of one model;
    answers 0/1/0/1 in each group, so every group has both classes."""
    return [
        Trace(
            problem_id=str(p),
            model=model,
            sample_id=s,
            text=f"{model}{tag} p{p} s{s} so step one so step two",
            answer=str(s % 2),
            finished=True,
        )
        for p in range(n_problems)
        for s in range(per_group)
    ]


def mixture(**over):
    sources = {
        "big": {"traces": partial(source_traces, "a"), "role": "train", "weight": 3, "split": "problem"},
        "small": {"traces": partial(source_traces, "b"), "role": "train", "weight": 1, "split": "problem"},
        "ood": {"traces": partial(source_traces, "c", 8), "role": "heldout", "val_fraction": 0.5},
    }
    for name, settings in over.items():
        if settings is None:
            sources.pop(name)
        else:
            sources[name] = {**sources.get(name, {}), **settings}
    return sources


def make_dm(sources, **kw):
    args = dict(
        sources=sources, head=CharHead(), truncation=WordPrefix(2), val_fraction=0.2, test_fraction=0.3,
        batch_size=4, seed=1, checker=ExactChecker(), split="problem",
    )  # fmt: skip
    args.update(kw)
    dm = PairDataModule(**args)
    dm.setup("fit")
    return dm


def test_group_batches_follow_the_source_weights():
    dm = make_dm(mixture(), group_batch_traces=3, group_batches_per_epoch=2000)
    features = dm.datasets["train"].features
    shares = Counter()
    for batch in dm.train_dataloader():
        (source,) = set(batch["sources"])  # a batch is one group, so one source
        shares[source] += 1
    assert set(shares) == {"big", "small"}  # the held-out source never trains
    assert shares["big"] / sum(shares.values()) == pytest.approx(0.75, abs=0.05)
    # big and small have as many groups, so uniform group draws would give 0.5: the weights make the difference
    assert Counter(f["source"] for f in features)["big"] == Counter(f["source"] for f in features)["small"]


def test_samplers_draw_sources_by_weight_and_are_seeded():
    sources = ["x"] * 90 + ["y"] * 10  # y has few pairs but weight 1 of 2
    sampler = SourceWeightedSampler(sources, {"x": 1.0, "y": 1.0}, seed=3)
    drawn = list(sampler)
    assert len(drawn) == 100 and list(SourceWeightedSampler(sources, {"x": 1, "y": 1}, seed=3)) == drawn
    many = [i for _ in range(40) for i in sampler]
    assert sum(sources[i] == "y" for i in many) / len(many) == pytest.approx(0.5, abs=0.05)
    groups = [f"g{i // 3}" for i in range(60)]
    texts = [(f"{g}-t{i % 3}", f"{g}-t{(i + 1) % 3}") for i, g in enumerate(groups)]
    by = ["x" if int(g[1:]) < 15 else "y" for g in groups]  # 15 groups of x, 5 of y
    batches = list(GroupBatchSampler(groups, texts, 2, 4000, seed=0, sources=by, weights={"x": 1, "y": 3}))
    share_y = sum(by[b[0]] == "y" for b in batches) / len(batches)
    assert share_y == pytest.approx(0.75, abs=0.05)
    with pytest.raises(ValueError, match=r"no weight for source\(s\) \['y'\]"):
        GroupBatchSampler(groups, texts, 2, 4, sources=by, weights={"x": 1})


def test_single_source_group_stream_is_the_old_one():
    """Without sources the group batch stream is the one the sampler drew before mixtures (the old loop, here)."""
    import random

    groups = [f"g{i // 6}" for i in range(36)]
    texts = [(f"{g}-t{i % 4}", f"{g}-t{(i % 4 + 1 + i % 2) % 4}") for i, g in enumerate(groups)]
    sampler = GroupBatchSampler(groups, texts, 3, 50, seed=5)
    by_group = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    rng, keys, old = random.Random("5-0"), sorted(by_group), []
    while len(old) < 50:
        members = by_group[rng.choice(keys)]
        traces = sorted({t for i in members for t in texts[i]})
        chosen = set(rng.sample(traces, min(3, len(traces))))
        batch = [i for i in members if texts[i][0] in chosen and texts[i][1] in chosen]
        if batch:
            old.append(batch)
    assert list(sampler) == old


def test_heldout_source_stays_on_the_val_test_side():
    dm = make_dm(mixture())

    def where(source):
        return {
            name: {(f["texts"][0].split()[1], f["texts"][0].split()[0]) for f in ds.features if f["source"] == source}
            for name, ds in dm.datasets.items()
        }

    ood = where("ood")
    assert not ood["train"]  # no problem or trace of the held-out source in train
    val_problems, test_problems = {p for p, _ in ood["val"]}, {p for p, _ in ood["test"]}
    assert len(val_problems) == 4 and len(test_problems) == 4 and not val_problems & test_problems
    assert dm.source_counts["ood"]["train"]["pairs"] == 0
    assert dm.source_counts["ood"]["val"]["pairs"] + dm.source_counts["ood"]["test"]["pairs"] == 8 * 6
    # every pair keeps its source and model; the train sources' problem splits are disjoint per source
    for ds in dm.datasets.values():
        for f in ds.features:
            assert f["texts"][0].startswith({"big": "a", "small": "b", "ood": "c"}[f["source"]])
            assert f["model"] == {"big": "a", "small": "b", "ood": "c"}[f["source"]]
    big = where("big")
    assert not {p for p, _ in big["train"]} & {p for p, _ in big["test"]}
    # problem ids collide across sources ("0".."9"), groups do not: each training group is of one source
    groups = Counter(f["group"] for f in dm.datasets["train"].features)
    assert len(groups) == 2 * 5 and all(n == 6 for n in groups.values())
    # the export's seen problems: train and val of every source
    assert set(dm.problem_ids["val"]) >= {p.removeprefix("p") for p in val_problems}
    report = dm.mixture_report()
    assert report["data_sources"]["ood"]["role"] == "heldout" and report["data_sources_skipped"] == {}
    assert report["data_sources"]["big"]["counts"]["train"] == dm.source_counts["big"]["train"]


def test_heldout_split_is_stratified_by_mixed_problems():
    """Few problems with two answers (as in Qwen2.5-Math): both sides still get one."""

    def mostly_one_answer(*_):
        traces = source_traces("c", 10)
        for t in traces:
            if t.problem_id not in ("3", "7"):
                t.answer = "0"
        return traces

    for seed in range(5):
        dm = make_dm(mixture(ood={"traces": mostly_one_answer}), seed=seed)
        assert dm.source_counts["ood"]["val"]["different"] == dm.source_counts["ood"]["test"]["different"] == 4


def test_validate_and_test_choose_the_sides_a_source_feeds():
    dm = make_dm(mixture(ood={"validate": False}, small={"validate": False}))
    assert dm.source_counts["ood"]["val"]["pairs"] == 0 and dm.source_counts["ood"]["test"]["pairs"] == 8 * 6
    assert dm.source_counts["small"]["val"]["pairs"] == 0 and dm.source_counts["small"]["test"]["pairs"] > 0
    assert {f["source"] for f in dm.datasets["val"].features} == {"big"}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"ood": {"role": "test"}}, r"data\.sources\.ood\.role='test' is invalid"),
        ({"big": {"weight": 0}}, r"data\.sources\.big\.weight=0 is invalid.*> 0"),
        ({"small": {"weight": -1.5}}, r"data\.sources\.small\.weight=-1\.5"),
        ({"big": {"traces": None}}, r"data\.sources\.big\.traces is missing"),
        ({"big": {"wieght": 2}}, r"data\.sources\.big: unknown key\(s\) \['wieght'\]"),
        ({"ood": {"validate": False, "test": False}}, r"data\.sources\.ood: a held-out source .* never used"),
    ],
)
def test_bad_sources_fail_by_key_at_construction(over, message):
    with pytest.raises(ValueError, match=message):
        PairDataModule(sources=mixture(**over))


def test_empty_validation_fails_before_any_head():
    """No source feeds validation: the error names every validate key, from prepare_pairs (no model needed)."""
    dm = PairDataModule(
        sources=mixture(big={"validate": False}, small={"validate": False}, ood={"validate": False}),
        checker=ExactChecker(), val_fraction=0.2, test_fraction=0.3,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"validation is empty.*data\.sources\.big\.validate.*ood\.validate"):
        dm.prepare_pairs()
    assert dm.head is None


def test_optional_missing_source_is_skipped_and_a_required_one_names_its_key(tmp_path, caplog):
    from deepprune.sources.samples import load_qwen25_math

    missing = partial(load_qwen25_math, tmp_path / "absent.jsonl")
    with caplog.at_level(logging.WARNING):
        dm = make_dm(mixture(ood={"traces": missing, "optional": True}))
    assert dm.skipped_sources.keys() == {"ood"} and "absent.jsonl" in dm.skipped_sources["ood"]
    assert "data.sources.ood.traces is optional" in caplog.text
    assert {f["source"] for f in dm.datasets["test"].features} == {"big", "small"}
    with pytest.raises(FileNotFoundError, match=r"data\.sources\.ood\.traces: .*absent\.jsonl"):
        make_dm(mixture(ood={"traces": missing}))


def test_collected_jsonl_traces_are_a_source(tmp_path):
    from deepprune.sources.jsonl import load_trace_file
    from deepprune.traces import write_traces

    path = write_traces(tmp_path / "collected.jsonl", source_traces("live", 6))
    dm = make_dm(mixture(small=None, mine={"traces": partial(load_trace_file, path), "role": "heldout"}))
    assert dm.source_counts["mine"]["val"]["pairs"] + dm.source_counts["mine"]["test"]["pairs"] == 6 * 6


def _rank_auroc(scores, labels):
    """AUROC by its definition: the share of (positive, negative) pairs ranked right, ties counting one half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_per_source_metrics_match_the_rank_formula():
    import random

    rng = random.Random(0)
    n = 300
    labels = [rng.random() < 0.4 for _ in range(n)]
    sources = [rng.choice(["s1", "s2"]) for _ in range(n)]
    models = [rng.choice(["m1", "m2"]) for _ in range(n)]
    scores = [round(rng.random() * 0.6 + 0.3 * y, 2) for y in labels]  # rounded: ties happen
    reference = [round(rng.random(), 1) for _ in range(n)]
    table = per_source_metrics(scores, [int(y) for y in labels], sources, models, reference=reference)
    assert set(table) == {"s1", "s2"}
    for source, row in table.items():
        idx = [i for i in range(n) if sources[i] == source]
        assert row["n"] == len(idx) and row["pos"] == sum(labels[i] for i in idx)
        assert row["auroc"] == pytest.approx(_rank_auroc([scores[i] for i in idx], [labels[i] for i in idx]))
        ref = _rank_auroc([reference[i] for i in idx], [labels[i] for i in idx])
        assert row["auroc_reference"] == pytest.approx(ref)
        for model, sub in row["models"].items():
            jdx = [i for i in idx if models[i] == model]
            assert sub["auroc"] == pytest.approx(_rank_auroc([scores[i] for i in jdx], [labels[i] for i in jdx]))
            ref = _rank_auroc([reference[i] for i in jdx], [labels[i] for i in jdx])
            assert sub["auroc_reference"] == pytest.approx(ref)


def test_rank_auroc_equals_torchmetrics_and_the_definition():
    import random

    from deepprune.judge.metrics import judge_metrics, rank_auroc

    rng = random.Random(3)
    labels = [int(rng.random() < 0.3) for _ in range(200)]
    scores = [round(rng.random() * 0.5 + 0.4 * y, 1) for y in labels]  # coarse: many ties
    assert rank_auroc(scores, labels) == pytest.approx(_rank_auroc(scores, labels), abs=1e-12)
    assert rank_auroc(scores, labels) == pytest.approx(judge_metrics(scores, labels)["auroc"], abs=1e-6)
    assert rank_auroc([0.2, 0.2, 0.9], [0, 1, 1]) == 0.75  # (half + one) / 2
    assert math.isnan(rank_auroc([0.1, 0.2], [1, 1]))


def test_auroc_intervals_resample_problems_as_a_plain_loop_would():
    """An independent loop (one rng.integers draw of problems per resample, seed 0, one-class draws dropped) gives
    the same three intervals; the difference is taken on the same resamples, so a judge equal to its reference
    has the interval [0, 0]."""
    import random

    import numpy as np

    from deepprune.judge.metrics import auroc_intervals, rank_auroc

    rng = random.Random(5)
    problems = [f"p{i % 9}" for i in range(150)]
    labels = [int(rng.random() < (0.2 if p in ("p1", "p4") else 0.9)) for p in problems]
    scores = [rng.random() * 0.7 + 0.3 * y for y in labels]
    reference = [rng.random() * 0.9 + 0.1 * y for y in labels]
    got = auroc_intervals(scores, labels, problems, reference=reference, n_boot=300)
    members = {p: [i for i, q in enumerate(problems) if q == p] for p in dict.fromkeys(problems)}
    groups = list(members.values())
    draws = np.random.default_rng(0)
    s, r, y = np.array(scores), np.array(reference), np.array(labels)
    judge, ref = [], []
    for _ in range(300):
        idx = np.concatenate([groups[g] for g in draws.integers(0, len(groups), len(groups))])
        a, b = rank_auroc(s[idx], y[idx]), rank_auroc(r[idx], y[idx])
        if not (math.isnan(a) or math.isnan(b)):
            judge.append(a)
            ref.append(b)
    for key, values in (("auroc", judge), ("auroc_reference", ref), ("auroc_diff", np.subtract(judge, ref))):
        low, high = np.quantile(values, [0.025, 0.975])
        assert (got[key].low, got[key].high) == pytest.approx((low, high), abs=1e-12)
    assert got["auroc"].mean == pytest.approx(_rank_auroc(scores, labels))
    assert got["auroc_diff"].mean == pytest.approx(got["auroc"].mean - got["auroc_reference"].mean)
    same = auroc_intervals(scores, labels, problems, reference=scores, n_boot=100)["auroc_diff"]
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    assert auroc_intervals([0.1, 0.2], [1, 1], ["a", "b"], reference=[0.3, 0.4]) == dict.fromkeys(
        ("auroc", "auroc_reference", "auroc_diff")
    )
    with pytest.raises(ValueError, match="differ in length: 2 scores, 1 groups"):
        auroc_intervals([0.1, 0.2], [0, 1], ["a"])


def test_per_source_metrics_intervals_by_problem_where_a_source_has_several_models():
    from deepprune.judge.metrics import auroc_intervals

    labels = [1, 0, 1, 0, 1, 1, 0, 1, 0, 1] * 4
    scores = [0.9, 0.2, 0.7, 0.4, 0.8, 0.6, 0.5, 0.3, 0.1, 0.95] * 4
    reference = [0.5, 0.5, 0.6, 0.2, 0.9, 0.1, 0.3, 0.8, 0.4, 0.7] * 4
    problems = [f"q{i // 4}" for i in range(40)]
    sources = ["two"] * 20 + ["one"] * 20
    models = ["m1", "m2"] * 10 + ["m"] * 20
    table = per_source_metrics(scores, labels, sources, models, reference=reference, problems=problems)
    for source, lo, hi in (("two", 0, 20), ("one", 20, 40)):
        ci = auroc_intervals(scores[lo:hi], labels[lo:hi], problems[lo:hi], reference=reference[lo:hi])
        assert table[source]["auroc_diff_ci"] == pytest.approx([ci["auroc_diff"].low, ci["auroc_diff"].high])
        assert table[source]["auroc_ci"][0] <= table[source]["auroc"] <= table[source]["auroc_ci"][1]
    m1 = [i for i in range(20) if models[i] == "m1"]
    ci = auroc_intervals([scores[i] for i in m1], [labels[i] for i in m1], [problems[i] for i in m1],
                         reference=[reference[i] for i in m1])  # fmt: skip
    assert table["two"]["models"]["m1"]["auroc_reference_ci"] == pytest.approx(
        [ci["auroc_reference"].low, ci["auroc_reference"].high]
    )
    assert "auroc_diff_ci" not in table["one"]["models"]["m"]
    assert "auroc_diff_ci" not in per_source_metrics(scores, labels, sources, models, reference=reference)["one"]


def test_single_source_champ_pipeline_is_unchanged():
    """data=champ's path (no sources): the same pairs as split_traces -> build_pairs -> the seeded max_pairs
    subsample, in the same order, with the same swaps; no source on any pair, no mixture report."""
    import random

    from deepprune.pairs import build_pairs, split_traces
    from deepprune.sources.champ import load_champ_traces

    traces = load_champ_traces(max_problems=30)
    kw = dict(test_models=["GPT-4"], val_fraction=0.2, test_fraction=0.3, seed=7, checker=ExactChecker())
    dm = PairDataModule(traces=traces, head=CharHead(), truncation=WordPrefix(3), max_pairs=50, **kw)
    dm.setup("fit")
    parts = split_traces(traces, "model", ["GPT-4"], (), 0.2, 0.3, True, 7, None)
    rule = WordPrefix(3)
    for name, part in parts.items():
        pairs = build_pairs(part, checker=ExactChecker()).pairs
        if len(pairs) > 50:
            keep = sorted(random.Random(f"7-subsample-{name}").sample(range(len(pairs)), 50))
            pairs = [pairs[i] for i in keep]
        swap = random.Random(f"7-order-{name}")
        expected = []
        for p in pairs:
            a, b = rule.cut(p.a.text), rule.cut(p.b.text)
            expected.append(((b, a) if swap.random() < 0.5 else (a, b), p.label, p.a.model))
        got = [(f["texts"], f["label"], f["model"]) for f in dm.datasets[name].features]
        assert got == expected
        assert all(f["source"] is None and "\x1f" in f["group"] for f in dm.datasets[name].features)
    assert dm.mixture_report() == {} and dm.sources is None


def test_data_mixture_config_composes_with_overrides(tmp_path):
    """conf/data/mixture.yaml: three sources from conf/source/, overridable and removable by name; the config
    checks name the key before anything loads."""
    from hydra import compose, initialize_config_dir

    from deepprune.runtime import CONF_DIR
    from deepprune.train import check_train_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=mixture", "data.sources.qwen25_math.weight=0.5"])
        dropped = compose("train", overrides=["data=mixture", "~data.sources.qwen25_math"])
        bad = compose("train", overrides=["data=mixture", "data.sources.qwen25_math.role=trian"])
    sources = cfg.data.sources
    assert list(sources) == ["champ", "skythought_amc23", "qwen25_math"] and cfg.data.traces is None
    assert sources.champ.traces._target_ == "deepprune.sources.champ.load_champ_traces"
    assert sources.champ.traces._partial_ and sources.qwen25_math.traces._partial_
    assert sources.qwen25_math.weight == 0.5 and sources.qwen25_math.role == "heldout"
    assert sources.skythought_amc23.optional and sources.qwen25_math.optional and not sources.champ.get("optional")
    assert list(dropped.data.sources) == ["champ", "skythought_amc23"]
    check_train_config(cfg)
    with pytest.raises(ValueError, match=r"data\.sources\.qwen25_math\.role='trian'"):
        check_train_config(bad)


def test_train_on_a_mixture_writes_per_source_metrics(tmp_path):
    """The whole train entry on a mixture (tiny siamese judge, group batches), the checkpoint chosen on the held-out
    source's validation AUROC: val/auroc/<source> is logged, and metrics.json has AUROC per source and per (source,
    model) with the reference beside each."""
    from omegaconf import open_dict
    from test_train import make_cfg

    cfg = make_cfg(
        tmp_path, "model=tiny_siamese", "data.group_batch_traces=3", "data.group_batches_per_epoch=6",
        "truncation.k=24", "data.split=problem", "data.test_models=[]",
        "+module.reference_scorer={_target_: test_train.OverlapScorer, _partial_: true}",
        "optimized_metric=val/auroc/ood",  # checkpoint choice on the source the judge does not train on
    )  # fmt: skip
    with open_dict(cfg):
        cfg.data.traces = None
        cfg.data.sources = {
            "big": {"traces": {"_target_": "test_mixture.source_traces", "_partial_": True, "model": "a"},
                    "weight": 3},
            "small": {"traces": {"_target_": "test_mixture.source_traces", "_partial_": True, "model": "b"},
                      "weight": 1},
            "ood": {"traces": {"_target_": "test_mixture.source_traces", "_partial_": True, "model": "c",
                               "n_problems": 8}, "role": "heldout", "val_fraction": 0.5},
        }  # fmt: skip
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["per_source"]) == {"big", "small", "ood"}
    assert sum(row["n"] for row in metrics["per_source"].values()) == metrics["data_counts"]["test"]["pairs"]
    for source, model in (("big", "a"), ("small", "b"), ("ood", "c")):
        row = metrics["per_source"][source]
        assert row["n"] == metrics["data_sources"][source]["counts"]["test"]["pairs"] > 0
        assert set(row["models"]) == {model} and row["models"][model]["n"] == row["n"]
        assert 0 <= row["auroc"] <= 1 and 0 <= row["auroc_reference"] <= 1
        assert metrics[f"test/auroc/{source}"] == row["auroc"]
        assert metrics[f"test/auroc_reference/{source}"] == row["auroc_reference"]
    # scores.jsonl names each test pair's source and problem, so its intervals can be recomputed from it alone
    from deepprune.judge.metrics import auroc_intervals
    from deepprune.judge.scores import read_scores

    records = read_scores(tmp_path / "scores.jsonl")
    assert len(records) == metrics["data_counts"]["test"]["pairs"]
    for source, row in metrics["per_source"].items():
        mine = [r for r in records if r["source"] == source]
        assert len(mine) == row["n"] and all(r["problem_id"] is not None for r in mine)
        ci = auroc_intervals(
            [r["score"] for r in mine], [r["label"] for r in mine], [r["problem_id"] for r in mine],
            reference=[r["score_reference"] for r in mine],
        )  # fmt: skip
        assert row["auroc_diff"] == pytest.approx(row["auroc"] - row["auroc_reference"])
        for key in ("auroc", "auroc_reference", "auroc_diff"):
            assert row[f"{key}_ci"] == pytest.approx([ci[key].low, ci[key].high], nan_ok=True)
        assert "auroc_ci" not in row["models"][next(iter(row["models"]))]  # one model: the source's interval
    assert metrics["global_steps"] == 6 and 0 <= metrics["test/auroc"] <= 1  # the old keys stay
    assert 0 <= metrics["best_val/auroc/ood"] <= 1 and cfg.callbacks.model_checkpoint.monitor == "val/auroc/ood"
    import csv

    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert {"val/auroc", "val/auroc/big", "val/auroc/small", "val/auroc/ood", "val/auroc_source_mean"} <= set(rows[0])
    for row in (r for r in rows if r["val/auroc/ood"]):
        mean = sum(float(row[f"val/auroc/{s}"]) for s in ("big", "small", "ood")) / 3
        assert float(row["val/auroc_source_mean"]) == pytest.approx(mean, abs=1e-6)


def test_blend_on_a_mixture_records_each_alphas_per_source_validation(tmp_path):
    """With sources, every blend weight's row has its per-source validation AUROC, whose mean is the value the
    choice maximized (val/auroc_source_mean)."""
    from omegaconf import open_dict
    from test_train import make_cfg

    cfg = make_cfg(
        tmp_path, "model=tiny_siamese", "data.group_batch_traces=3", "data.group_batches_per_epoch=4",
        "truncation.k=24", "data.split=problem", "data.test_models=[]", "export=false", "calibration=null",
        "blend=weight_space", "blend.alphas=[0.0,1.0]", "optimizer.lr=1e-3",
    )  # fmt: skip
    with open_dict(cfg):
        cfg.data.traces = None
        cfg.data.sources = {
            "big": {"traces": {"_target_": "test_mixture.source_traces", "_partial_": True, "model": "a"}},
            "ood": {"traces": {"_target_": "test_mixture.source_traces", "_partial_": True, "model": "c",
                               "n_problems": 8}, "role": "heldout", "val_fraction": 0.5},
        }  # fmt: skip
    train(cfg)
    grid = json.loads((tmp_path / "metrics.json").read_text())["blend"]["grid"]
    assert [row["alpha"] for row in grid] == [0.0, 1.0]
    for row in grid:
        per_source = row["val_auroc_per_source"]
        assert set(per_source) == {"big", "ood"}
        assert row["val_auroc"] == pytest.approx(sum(per_source.values()) / 2, abs=1e-6)


def test_data_mixture_without_shared_trains_on_champ_alone(tmp_path, monkeypatch):
    """../shared absent (DEEPPRUNE_SHARED at an empty folder): data=mixture skips its two optional dev sets, says
    why, and keeps CHAMP; made required, a dev set stops the run naming its key and path."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    monkeypatch.setenv("DEEPPRUNE_SHARED", str(tmp_path))
    small = ["data.sources.champ.max_problems={train: 4, val: 2, test: 3}", "data.sources.champ.label_cache=null"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=mixture", *small])
        required = compose(
            "train", overrides=["data=mixture", "~data.sources.champ", "data.sources.qwen25_math.optional=false"]
        )
    dm = instantiate(cfg.data, checker=ExactChecker())
    dm.prepare_pairs()
    assert set(dm.skipped_sources) == {"skythought_amc23", "qwen25_math"}
    assert str(tmp_path) in dm.skipped_sources["qwen25_math"]
    assert set(dm.source_counts) == {"champ"} and dm.mixture_report()["data_sources_skipped"] == dm.skipped_sources
    with pytest.raises(FileNotFoundError, match=r"data\.sources\.qwen25_math\.traces: .*math_cot_dev50\.jsonl"):
        instantiate(required.data, checker=ExactChecker()).prepare_pairs()


def test_swap_sides_exchanges_a_heldout_sources_val_and_test():
    """swap_sides: the same seed's held-out split with val and test exchanged (the other fold), pairs and counts
    unchanged; the train sources are not touched."""

    def sides(dm, source):
        return {
            name: sorted(tuple(sorted(f["texts"])) for f in ds.features if f["source"] == source)  # order shuffled
            for name, ds in dm.datasets.items()
        }

    plain = make_dm(mixture())
    swapped = make_dm(mixture(ood={"swap_sides": True}))
    a, b = sides(plain, "ood"), sides(swapped, "ood")
    assert a["val"] and a["test"] and a["val"] != a["test"]
    assert b["val"] == a["test"] and b["test"] == a["val"] and not b["train"]
    assert sides(plain, "big") == sides(swapped, "big")
    assert swapped.source_counts["ood"]["val"] == plain.source_counts["ood"]["test"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"big": {"swap_sides": True}}, r"data\.sources\.big\.swap_sides=true needs role=heldout"),
        (
            {"ood": {"swap_sides": True, "validate": False}},
            r"data\.sources\.ood\.swap_sides=true needs .*validate=False",
        ),
        ({"ood": {"swap_sides": "yes"}}, r"data\.sources\.ood\.swap_sides='yes' is invalid"),
    ],
)
def test_swap_sides_bad_settings_fail_by_key(over, message):
    with pytest.raises(ValueError, match=message):
        PairDataModule(sources=mixture(**over))
