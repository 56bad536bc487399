"""`deepprune.pairs.split_traces`, the judge's train/val/test split, called directly (no DataModule, no head)."""

import pytest

from deepprune.pairs import split_by_problem, split_traces
from deepprune.traces import Trace


def make_traces(n_problems=10, models=("m1", "m2", "m3"), per_group=2):
    return [
        Trace(problem_id=f"p{p:02d}", model=m, sample_id=s, text=f"{m} p{p} s{s}", answer="1")
        for p in range(n_problems)
        for m in models
        for s in range(per_group)
    ]


def sides(parts):
    return {name: ({t.model for t in part}, {t.problem_id for t in part}) for name, part in parts.items()}


def test_model_split_holds_out_models_and_problems():
    traces = make_traces()
    parts = split_traces(traces, "model", ["m3"], val_fraction=0.2, test_fraction=0.3, seed=1)
    got = sides(parts)
    # the problem split is split_by_problem's: computed independently here
    train_ids, val_ids, test_ids = ({t.problem_id for t in side} for side in split_by_problem(traces, 0.2, 0.3, 1))
    assert got["test"] == ({"m3"}, test_ids) and len(test_ids) == 3
    assert got["val"] == ({"m1", "m2"}, val_ids) and len(val_ids) == 2  # no val_models: the training models
    assert got["train"] == ({"m1", "m2"}, train_ids) and len(train_ids) == 5
    assert [len(parts[s]) for s in ("train", "val", "test")] == [5 * 2 * 2, 2 * 2 * 2, 3 * 1 * 2]


def test_model_split_with_val_models_and_shared_problems():
    traces = make_traces()
    parts = split_traces(traces, "model", ["m3"], ["m2"], disjoint_problems=False)
    assert sides(parts)["val"][0] == {"m2"} and sides(parts)["test"][0] == {"m3"}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [20, 20, 20]  # every problem on every side
    # no val_models, shared problems: val is a problem split of the training models only
    parts = split_traces(traces, "model", ["m3"], val_fraction=0.2, disjoint_problems=False, seed=4)
    (train_models, train_ids), (val_models, val_ids) = sides(parts)["train"], sides(parts)["val"]
    assert train_models == val_models == {"m1", "m2"} and not train_ids & val_ids and len(val_ids) == 2
    assert sides(parts)["test"] == ({"m3"}, {f"p{p:02d}" for p in range(10)})


def test_problem_split_is_disjoint_and_order_free():
    traces = make_traces()
    parts = split_traces(traces, "problem", val_fraction=0.2, test_fraction=0.2, seed=3)
    ids = {name: problems for name, (_, problems) in sides(parts).items()}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert all(models == {"m1", "m2", "m3"} for models, _ in sides(parts).values())
    shuffled = split_traces(traces[::-1], "problem", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert {n: {t.problem_id for t in p} for n, p in shuffled.items()} == ids


def test_max_problems_is_a_seeded_cap_per_side():
    traces = make_traces()
    kwargs = dict(split="model", test_models=["m3"], val_fraction=0.2, test_fraction=0.3, seed=1)
    capped = split_traces(traces, **kwargs, max_problems={"train": 3, "test": 1})
    counts = {name: len({t.problem_id for t in part}) for name, part in capped.items()}
    assert counts == {"train": 3, "val": 2, "test": 1}
    full = split_traces(traces, **kwargs)
    assert {t.problem_id for t in capped["train"]} <= {t.problem_id for t in full["train"]}
    assert split_traces(traces, **kwargs, max_problems={"train": 3, "test": 1}) == capped  # reproducible
    one_cap = split_traces(traces, **kwargs, max_problems=2)
    assert {name: len({t.problem_id for t in part}) for name, part in one_cap.items()} == dict.fromkeys(capped, 2)
    assert split_traces(traces, **kwargs, max_problems=100) == full  # a cap above the count keeps everything


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="'model' or 'problem'"):
        split_traces(make_traces(), "random")
    with pytest.raises(ValueError, match=r"no traces for model\(s\) \['m9'\]"):
        split_traces(make_traces(), "model", ["m9"])
