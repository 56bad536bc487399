"""Pairs: exhaustive within (problem, model) groups, labels, exclusions and leakage-free splits."""

from __future__ import annotations

from itertools import combinations

import pytest
from helpers import SpaceBlindChecker

from deepprune.pairs import PairSet, build_pairs, split_by_model, split_by_problem
from deepprune.traces import Trace


def make(pid: str, model: str, answers: list[str | None], finished: bool | None = True) -> list[Trace]:
    return [
        Trace(problem_id=pid, text=f"{pid}-{model}-{i}", model=model, sample_id=i, answer=a, finished=finished)
        for i, a in enumerate(answers)
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 18])
def test_n_traces_give_n_choose_2_pairs(n: int) -> None:
    traces = make("p", "m", [str(i % 3) for i in range(n)])
    ps = build_pairs(traces, checker=SpaceBlindChecker())
    assert len(ps.pairs) == n * (n - 1) // 2
    assert ps.groups == (1 if n else 0)
    # every unordered pair exactly once, earlier trace first
    assert [(p.a.sample_id, p.b.sample_id) for p in ps.pairs] == list(combinations(range(n), 2))


def test_labels_groups_and_exclusions() -> None:
    traces = (
        make("p1", "A", ["1", "1", "2", "1 "])  # 6 pairs; same: (0,1) (0,3) (1,3) -> 3
        + make("p1", "B", ["5", "5"])  # another model: its own group, 1 same pair
        + make("p2", "A", ["x", None, "y"])  # None answer and text without an answer: excluded
        + make("p2", "A", ["x"], finished=False)  # unfinished: excluded
        + make("p3", "B", ["7"], finished=None)  # unknown finish state counts as finished; a lone trace: no pair
    )
    traces[7] = Trace("p2", "Let us think about this.", model="A", sample_id=1, answer=None)

    pytest.importorskip("deepprune.answers")  # the None-answer trace is re-extracted from its text
    ps = build_pairs(traces, checker=SpaceBlindChecker())
    assert isinstance(ps, PairSet)
    assert ps.groups == 4
    labels = {(p.a.problem_id, p.a.model, p.a.sample_id, p.b.sample_id): p.label for p in ps.pairs}
    assert labels == {
        ("p1", "A", 0, 1): 1,
        ("p1", "A", 0, 2): 0,
        ("p1", "A", 0, 3): 1,
        ("p1", "A", 1, 2): 0,
        ("p1", "A", 1, 3): 1,
        ("p1", "A", 2, 3): 0,
        ("p1", "B", 0, 1): 1,
        ("p2", "A", 0, 2): 0,
    }
    assert ps.positives == 4
    assert ps.excluded_traces == 2
    assert ps.excluded_by_model == {"A": 2}
    assert ps.excluded_unfinished == 1
    # keeping unfinished traces pairs them too
    assert len(build_pairs(traces, checker=SpaceBlindChecker(), exclude_unfinished=False).pairs) == 6 + 1 + 3


def test_missing_answer_is_extracted_from_text() -> None:
    answers = pytest.importorskip("deepprune.answers")
    text = "We compute 2+2. The answer is \\boxed{4}."
    expected = answers.extract_answer(text)
    assert expected is not None
    traces = [Trace("p", text, model="m"), Trace("p", "so the answer is \\boxed{4}", model="m", answer=expected)]
    ps = build_pairs(traces, checker=SpaceBlindChecker())
    (pair,) = ps.pairs
    assert pair.a.answer == expected and pair.label == 1
    assert traces[0].answer is None  # the input is not modified; the pair holds a filled-in copy


def test_cost_is_n_times_classes_not_n_squared() -> None:
    checker = SpaceBlindChecker()
    build_pairs(make("p", "m", ["1"] * 18), checker=checker)
    assert checker.comparisons == 17  # one class: each later trace compared once (153 pairs)


def test_default_checker_uses_answer_equivalence() -> None:
    pytest.importorskip("deepprune.answers")
    ps = build_pairs(make("p", "m", ["1/2", "0.5", "3"]))
    assert [p.label for p in ps.pairs] == [1, 0, 0]


# --- splits -------------------------------------------------------------------------------------------------------


def corpus() -> list[Trace]:
    out: list[Trace] = []
    for p in range(20):
        for model, n in (("A", 3), ("B", 2), ("C", 1)):
            out += make(f"p{p:02d}", model, ["1"] * n)
    return out


def test_split_by_model() -> None:
    traces = corpus()
    train, val, test = split_by_model(traces, test_models=["C"], val_models=["B"])
    assert {t.model for t in train} == {"A"} and {t.model for t in val} == {"B"} and {t.model for t in test} == {"C"}
    assert (len(train), len(val), len(test)) == (60, 40, 20)
    train, val, test = split_by_model(traces, test_models=["B", "C"])
    assert val == [] and len(train) == 60 and len(test) == 60


@pytest.mark.parametrize(
    ("test_models", "val_models", "message"),
    [
        (["D"], (), r"no traces for model\(s\) \['D'\]"),
        (["A", "B", "C"], (), "train split is empty"),
        (["A"], ["B", "C"], "train split is empty"),
        (["A"], ["A"], "both in test and val"),
        ([], (), "at least one test model"),
    ],
)
def test_split_by_model_errors_list_counts(test_models, val_models, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        split_by_model(corpus(), test_models=test_models, val_models=val_models)
    assert "{'A': 60, 'B': 40, 'C': 20}" in str(info.value)


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_split_by_problem_invariants(seed: int) -> None:
    traces = corpus()
    train, val, test = split_by_problem(traces, val_fraction=0.1, test_fraction=0.25, seed=seed)
    ids = [{t.problem_id for t in side} for side in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert [len(s) for s in ids] == [13, 2, 5]  # round(0.1 * 20) = 2, round(0.25 * 20) = 5
    assert len(train) + len(val) + len(test) == len(traces)
    # same seed, shuffled input order: same split
    again = split_by_problem(list(reversed(traces)), val_fraction=0.1, test_fraction=0.25, seed=seed)
    assert [{t.problem_id for t in side} for side in again] == ids


def test_split_by_problem_seed_matters_and_errors() -> None:
    traces = corpus()
    a = {t.problem_id for t in split_by_problem(traces, 0.0, 0.3, seed=0)[2]}
    b = {t.problem_id for t in split_by_problem(traces, 0.0, 0.3, seed=1)[2]}
    assert a != b
    assert split_by_problem(traces, 0.0, 0.3, seed=0)[1] == []
    tiny = make("only", "A", ["1"]) + make("two", "A", ["1"])
    assert len({t.problem_id for t in split_by_problem(tiny, 0.0, 0.01, seed=0)[2]}) == 1  # at least one problem
    with pytest.raises(ValueError, match="leave train non-empty"):
        split_by_problem(tiny, 0.3, 0.3, seed=0)
    with pytest.raises(ValueError, match="fractions"):
        split_by_problem(traces, 0.6, 0.5, seed=0)


def test_traces_cut_inside_a_thought_are_judged_unfinished() -> None:
    # a file without `finished`: the long chain of thought cut at the length limit must not get an answer from
    # its last sentence ("... try B" gave the answer 'B'), and is counted as unfinished
    cut = "<|begin_of_thought|>\nLet me try B"
    done = "<|begin_of_thought|>\nhmm\n<|end_of_thought|>\n<|begin_of_solution|>\\boxed{7}<|end_of_solution|>"
    traces = [
        Trace(problem_id="p", text=text, model="m", sample_id=i, finished=None)
        for i, text in enumerate([done, cut, done, "The answer is 7.", cut])
    ]
    ps = build_pairs(traces, checker=SpaceBlindChecker())
    assert (ps.excluded_traces, ps.excluded_unfinished, ps.judged_unfinished) == (2, 2, 2)
    assert [(p.a.sample_id, p.b.sample_id, p.label) for p in ps.pairs] == [(0, 2, 1), (0, 3, 1), (2, 3, 1)]
    # kept in, they still have no answer (an open thought is no answer), so they are excluded all the same
    kept = build_pairs(traces, checker=SpaceBlindChecker(), exclude_unfinished=False)
    assert (kept.excluded_traces, kept.excluded_unfinished, kept.judged_unfinished) == (2, 0, 0)
    # a known `finished` wins over the text: a trace marked finished=False is unfinished even when boxed
    marked = [Trace(problem_id="p", text=done, model="m", sample_id=0, finished=False)] + traces[:1]
    assert build_pairs(marked, checker=SpaceBlindChecker()).judged_unfinished == 0
    # and a trace known to be cut gets no fallback answer from its last sentence even when kept in
    cut_known = [Trace(problem_id="p", text="So the answer is 7.", model="m", finished=False)] + traces[:1]
    assert build_pairs(cut_known, checker=SpaceBlindChecker(), exclude_unfinished=False).excluded_traces == 1
