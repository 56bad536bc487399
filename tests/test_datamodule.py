"""PairDataModule and PairCollator: literal-tensor padding, splits without leakage, caps, counts, errors."""

import pytest
import torch
from helpers import ExactChecker

from deepprune.judge.datamodule import PairCollator, PairDataModule
from deepprune.judge.samplers import oversample
from deepprune.traces import Trace
from deepprune.truncation import WordPrefix

MODELS = ("m1", "m2", "m3")


class CharHead:
    """The head contract, minus the network: bytes as token ids, 0 pads."""

    pad_token_id = 0
    tokenizer = None

    def encode(self, a, b):
        return [1, *(min(c, 250) + 3 for c in a.encode()[:20]), 2, *(min(c, 250) + 3 for c in b.encode()[:20])]


def make_traces(n_problems=10, per_group=4):
    traces = []
    for p in range(n_problems):
        for m in MODELS:
            for s in range(per_group):
                # two answers per group -> both classes in every group
                traces.append(
                    Trace(
                        problem_id=f"p{p:02d}",
                        model=m,
                        sample_id=s,
                        text=f"{m} p{p} s{s} so step one so step two so step three",
                        answer=str(s % 2),
                        finished=True,
                    )
                )
    return traces


def make_dm(**kw):
    args = dict(
        traces=make_traces(),
        head=CharHead(),
        truncation=WordPrefix(2),
        test_models=["m3"],
        val_fraction=0.2,
        test_fraction=0.3,
        batch_size=4,
        seed=1,
        checker=ExactChecker(),
    )
    args.update(kw)
    dm = PairDataModule(**args)
    dm.setup("fit")
    return dm


def test_collator_literal_tensors_right_and_left():
    feats = [
        {"input_ids": [5, 6, 7], "label": 1, "model": "a", "texts": ("x", "y")},
        {"input_ids": [8], "label": 0, "model": "b", "texts": ("u", "v")},
    ]
    right = PairCollator(pad_token_id=0)(feats)
    assert torch.equal(right["input_ids"], torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(right["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert torch.equal(right["labels"], torch.tensor([1, 0]))
    assert right["models"] == ["a", "b"] and right["texts"] == [("x", "y"), ("u", "v")]
    assert right["indices"] == [-1, -1]  # features without an index (the datamodule numbers its own)
    left = PairCollator(pad_token_id=9, padding_side="left")(feats)
    assert torch.equal(left["input_ids"], torch.tensor([[5, 6, 7], [9, 9, 8]]))
    assert torch.equal(left["attention_mask"], torch.tensor([[1, 1, 1], [0, 0, 1]]))


def test_model_split_holds_out_models_and_problems():
    dm = make_dm()
    test_models = {f["model"] for f in dm.datasets["test"].features}
    train_models = {f["model"] for f in dm.datasets["train"].features}
    assert test_models == {"m3"} and train_models == {"m1", "m2"}
    assert {f["model"] for f in dm.datasets["val"].features} <= {"m1", "m2"}  # never a test model

    def problems(name):
        return {t.split()[1] for f in dm.datasets[name].features for t in f["texts"]}

    # 10 problems: round(0.3 * 10) = 3 test, round(0.2 * 10) = 2 val, 5 train, all disjoint
    assert (len(problems("train")), len(problems("val")), len(problems("test"))) == (5, 2, 3)
    assert not problems("train") & problems("test") and not problems("train") & problems("val")
    # per group of 4 traces with answers 0,1,0,1: C(4,2) = 6 pairs, 2 of them same-answer
    assert dm.counts["test"] == {"traces_excluded": 0, "pairs_total": 18, "pairs": 18, "same": 6, "different": 12}
    assert dm.counts["train"]["pairs"] == 5 * 2 * 6


def test_truncation_encoding_and_order_swap():
    dm = make_dm()
    texts = [t for f in dm.datasets["train"].features for t in f["texts"]]
    assert all(t.endswith("step one so") for t in texts)  # up to and including the 2nd reasoning word
    f = dm.datasets["train"].features[0]
    assert f["input_ids"] == CharHead().encode(*f["texts"])
    # the (a, b) order is swapped for a seeded share of pairs: sample ids appear in both orders
    firsts = [
        int(f["texts"][0].split()[2][1]) < int(f["texts"][1].split()[2][1]) for f in dm.datasets["train"].features
    ]
    assert 0 < sum(firsts) < len(firsts)
    again = make_dm()
    assert [f["texts"] for f in again.datasets["train"].features] == [
        f["texts"] for f in dm.datasets["train"].features
    ]


def test_max_pairs_and_max_problems_are_seeded_caps():
    dm = make_dm(max_pairs={"train": 7, "test": 5}, max_problems={"train": 3})
    assert len(dm.datasets["train"]) == 7 and len(dm.datasets["test"]) == 5
    assert dm.counts["train"]["pairs_total"] == 3 * 2 * 6
    same = make_dm(max_pairs={"train": 7, "test": 5}, max_problems={"train": 3})
    assert [f["texts"] for f in same.datasets["train"].features] == [f["texts"] for f in dm.datasets["train"].features]


def test_problem_split_and_batches():
    dm = make_dm(split="problem", test_models=[])
    assert {f["model"] for f in dm.datasets["test"].features} == set(MODELS)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and batch["attention_mask"].sum() > 0
    assert batch["input_ids"].dtype == torch.long


def test_sampler_factory_is_used_for_training():
    dm = make_dm(sampler=lambda labels: oversample(labels, factor=2.0, seed=0))
    loader = dm.train_dataloader()
    n = len(dm.datasets["train"])
    minority = sum(dm.datasets["train"].labels)  # 1/3 of the pairs are same-answer
    assert len(loader.sampler) == (n - minority) + 2 * minority


def test_one_class_split_fails_before_training_with_counts():
    traces = make_traces()
    for t in traces:
        if t.model == "m3":
            t.answer = "same"  # every test pair is same-answer
    with pytest.raises(
        ValueError, match=r"split test has no pairs of one class.*test: 18 pairs \(18 same, 0 different\)"
    ):
        make_dm(traces=traces)


def test_unknown_model_is_reported_with_models_present():
    with pytest.raises(ValueError, match="m9"):
        make_dm(test_models=["m9"])


def test_bad_options_are_rejected_early():
    with pytest.raises(TypeError, match="PrefixRule"):
        PairDataModule(traces=[], truncation="chars", test_models=["m3"])
    with pytest.raises(ValueError, match="test_models"):
        PairDataModule(traces=[], split="model")
    with pytest.raises(ValueError, match="max_pairs"):
        PairDataModule(traces=[], test_models=["m3"], max_pairs={"training": 3})


def test_group_batches_are_sharded_over_ranks():
    """Under DDP each rank gets every world_size-th batch of the same seeded stream: disjoint, in lockstep, and
    together the single-device epoch; one device keeps the plain batch sampler."""
    from types import SimpleNamespace

    from deepprune.judge.samplers import ShardedGroupBatches

    def batches(world_size, rank):
        dm = make_dm(group_batch_traces=3, group_batches_per_epoch=5)
        dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        loader = dm.train_dataloader()
        return loader, [tuple(b["indices"]) for b in loader]

    single_loader, single = batches(1, 0)
    assert not isinstance(single_loader.dataset, ShardedGroupBatches) and len(single) == 5
    loader0, rank0 = batches(2, 0)
    _, rank1 = batches(2, 1)
    assert isinstance(loader0.dataset, ShardedGroupBatches) and len(loader0) == 2
    assert rank0 == [single[0], single[2]] and rank1 == [single[1], single[3]]


def test_features_are_numbered_per_split():
    dm = make_dm()
    for name in ("train", "val", "test"):
        assert [f["index"] for f in dm.datasets[name].features] == list(range(len(dm.datasets[name])))
