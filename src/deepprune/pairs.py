"""Exhaustive trace pairs with same-answer labels, and leakage-free splits (paper section 4.1.1).

:func:`build_pairs` groups traces by ``(problem_id, model)`` (the paper pairs the traces one model produced for one
problem) and pairs every group exhaustively: ``n`` usable traces give ``n * (n - 1) / 2`` pairs, in trace order
(``a`` is always the earlier trace; heads and data modules shuffle or symmetrise the order themselves). The label
is 1 when the two final answers are equivalent under :mod:`deepprune.answers` (the one equivalence used
everywhere). Answers are put into equivalence classes once per group (``AnswerChecker.classes``), so a group
costs ``O(n * classes)`` comparisons rather than ``O(n^2)``.

A trace's answer is ``trace.answer``, or extracted from ``trace.text`` when that is ``None`` (the pair then
holds a copy of the trace with ``answer`` filled in). As in the paper, traces without an extractable answer and
traces that did not finish are left out of the pairs and counted (``PairSet.excluded_traces``, per model in
``excluded_by_model``). A trace did not finish when ``finished is False``, or, when ``finished`` is unknown
(``None``), when its text ends inside an open thought (:func:`deepprune.answers.looks_finished`; counted in
``PairSet.judged_unfinished``): long chains of thought cut at the length limit have no answer, and their last
sentence would give a made-up one.

:func:`split_by_model` is the paper's cross-model test (train on some generating models, test on unseen ones);
:func:`split_by_problem` is a seeded split in which no problem lands on two sides; :func:`split_traces` combines
them into the judge's train/val/test split (what ``PairDataModule`` trains on).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from deepprune.answers import AnswerClasses, extract_answer, looks_finished
from deepprune.runtime import progress
from deepprune.traces import Trace


@dataclass(frozen=True)
class TracePair:
    """Two traces of the same problem and model; ``label`` 1 = same final answer."""

    a: Trace
    b: Trace
    label: int


@dataclass
class PairSet:
    """The pairs of a trace list plus what was left out."""

    pairs: list[TracePair]
    excluded_traces: int
    groups: int
    excluded_by_model: dict[str, int] = field(default_factory=dict)  # model (or "None") -> traces left out
    excluded_unfinished: int = 0  # of excluded_traces: left out as unfinished (finished False, or judged so)
    judged_unfinished: int = 0  # of excluded_unfinished: finished unknown, the text cut inside a thought

    @property
    def positives(self) -> int:
        return sum(p.label for p in self.pairs)


def group_traces(traces: Iterable[Trace]) -> dict[tuple[str, str | None], list[Trace]]:
    """Traces grouped by ``(problem_id, model)``, groups and members in first-seen order."""
    groups: dict[tuple[str, str | None], list[Trace]] = {}
    for t in traces:
        groups.setdefault((t.problem_id, t.model), []).append(t)
    return groups


UNFINISHED, JUDGED_UNFINISHED, NO_ANSWER = "unfinished", "judged_unfinished", "no_answer"


def with_answer(trace: Trace, exclude_unfinished: bool = True) -> tuple[Trace | None, str | None]:
    """``(trace with its answer, None)`` when the trace can take part in a pair, else ``(None, reason)``.

    The one rule for pair labels (:func:`build_pairs`) and offline evaluation's pair sample: a trace that did not
    finish (``finished is False``, or, in a file without a ``finished`` field, a text judged cut: a thought left
    open at the end) is left out when ``exclude_unfinished`` (reason ``"unfinished"`` / ``"judged_unfinished"``);
    a missing ``answer`` is extracted from the text, and a trace without one is left out (``"no_answer"``).
    """
    # a file without a `finished` field still shows cut traces: a thought left open at the end
    cut_by_text = trace.finished is None and looks_finished(trace.text) is False
    if exclude_unfinished and (trace.finished is False or cut_by_text):
        return None, JUDGED_UNFINISHED if cut_by_text else UNFINISHED
    if trace.answer is not None:
        return trace, None
    answer = extract_answer(trace.text, finished=trace.finished)
    return (None, NO_ANSWER) if answer is None else (replace(trace, answer=answer), None)


def build_pairs(
    traces: Iterable[Trace], checker: AnswerClasses | None = None, exclude_unfinished: bool = True
) -> PairSet:
    """All within-group pairs with same-answer labels (see the module docstring)."""
    if checker is None:
        from deepprune.answers import get_checker

        checker = get_checker()
    pairs: list[TracePair] = []
    excluded: Counter[str] = Counter()
    unfinished = judged = 0
    groups = group_traces(traces)
    for (_, model), members in progress(groups.items(), desc="pairs", total=len(groups), unit="group"):
        usable: list[Trace] = []
        for t in members:
            answered, why = with_answer(t, exclude_unfinished)
            if answered is None:
                excluded[str(model)] += 1
                unfinished += why != NO_ANSWER
                judged += why == JUDGED_UNFINISHED
                continue
            usable.append(answered)
        classes = checker.classes([t.answer for t in usable])
        for i in range(len(usable)):
            for j in range(i + 1, len(usable)):
                pairs.append(TracePair(usable[i], usable[j], int(classes[i] == classes[j])))
    return PairSet(
        pairs=pairs,
        excluded_traces=sum(excluded.values()),
        groups=len(groups),
        excluded_by_model=dict(excluded),
        excluded_unfinished=unfinished,
        judged_unfinished=judged,
    )


# --- splits -------------------------------------------------------------------------------------------------------


def _model_counts(traces: Iterable[Trace]) -> dict[str, int]:
    return dict(sorted(Counter(str(t.model) for t in traces).items()))


def split_by_model(
    traces: Sequence[Trace], test_models: Sequence[str], val_models: Sequence[str] = ()
) -> tuple[list[Trace], list[Trace], list[Trace]]:
    """(train, val, test): test and val hold the listed models, train all the others.

    Raises ``ValueError`` (with the per-model trace counts) when a listed model has no traces, when test and
    val share a model, or when train or test ends up empty. ``val`` is empty when ``val_models`` is.
    """
    counts = _model_counts(traces)
    test_set, val_set = set(test_models), set(val_models)
    if not test_set:
        raise ValueError(f"split_by_model needs at least one test model; traces per model: {counts}")
    if test_set & val_set:
        raise ValueError(f"models both in test and val: {sorted(test_set & val_set)}; traces per model: {counts}")
    unknown = sorted(m for m in test_set | val_set if counts.get(str(m), 0) == 0)
    if unknown:
        raise ValueError(f"no traces for model(s) {unknown}; traces per model: {counts}")
    train = [t for t in traces if t.model not in test_set and t.model not in val_set]
    val = [t for t in traces if t.model in val_set]
    test = [t for t in traces if t.model in test_set]
    if not train:
        raise ValueError(f"train split is empty: every model is held out; traces per model: {counts}")
    return train, val, test


def split_by_problem(
    traces: Sequence[Trace], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Trace], list[Trace], list[Trace]]:
    """(train, val, test) by problem id: a seeded shuffle of the sorted ids, so no problem is on two sides.

    Each side gets ``round(fraction * n_problems)`` problems, at least one when its fraction is positive; the
    result depends only on the set of problem ids and the seed, not on trace order. Raises ``ValueError`` when
    the fractions are out of range or leave train empty.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= fractions and val + test < 1, got val={val_fraction}, test={test_fraction}")
    ids = sorted({t.problem_id for t in traces})
    random.Random(seed).shuffle(ids)

    def size(fraction: float) -> int:
        return max(1, math.floor(fraction * len(ids) + 0.5)) if fraction > 0 else 0

    n_test, n_val = size(test_fraction), size(val_fraction)
    if n_test + n_val >= len(ids):
        raise ValueError(
            f"{len(ids)} problems cannot fill val={val_fraction} and test={test_fraction} and leave train non-empty"
        )
    test_ids, val_ids = set(ids[:n_test]), set(ids[n_test : n_test + n_val])
    train = [t for t in traces if t.problem_id not in test_ids and t.problem_id not in val_ids]
    val = [t for t in traces if t.problem_id in val_ids]
    test = [t for t in traces if t.problem_id in test_ids]
    return train, val, test


SPLITS = ("train", "val", "test")


def split_traces(
    traces: Iterable[Trace],
    split: str = "model",
    test_models: Sequence[str] = (),
    val_models: Sequence[str] = (),
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    disjoint_problems: bool = True,
    seed: int = 0,
    max_problems: int | Mapping[str, int | None] | None = None,
) -> dict[str, list[Trace]]:
    """``{"train": ..., "val": ..., "test": ...}``: the judge's data split, then a seeded problem cap per side.

    ``split="problem"``: :func:`split_by_problem` over all models. ``split="model"``: :func:`split_by_model`
    (``val`` is ``val_models``, or the training models when that is empty, so checkpoint selection never sees a
    test model); with ``disjoint_problems`` the three sides also keep only the problems a seeded
    :func:`split_by_problem` gives them (unseen models AND unseen problems at test), otherwise, without
    ``val_models``, val is a problem split of train. ``max_problems`` (one cap, or one per side) keeps a seeded
    subsample of each side's problems, taken before pairs are built (pair labels cost answer comparisons).
    """
    if split not in ("model", "problem"):
        raise ValueError(f"split must be 'model' or 'problem', got {split!r}")
    traces = list(traces)
    if split == "problem":
        parts = dict(zip(SPLITS, split_by_problem(traces, val_fraction, test_fraction, seed)))
    else:
        train, val, test = split_by_model(traces, test_models, val_models)
        if disjoint_problems:
            # held-out models AND held-out problems: the test measures generalization on both axes
            ids = [
                {t.problem_id for t in side} for side in split_by_problem(traces, val_fraction, test_fraction, seed)
            ]
            val = val if val_models else train
            parts = {
                name: [t for t in side if t.problem_id in keep]
                for name, side, keep in zip(SPLITS, (train, val, test), ids)
            }
        else:
            if not val_models:
                train, val, _ = split_by_problem(train, val_fraction, 0.0, seed)
            parts = {"train": train, "val": val, "test": test}
    caps = max_problems if isinstance(max_problems, Mapping) else dict.fromkeys(SPLITS, max_problems)
    return {name: _subsample_problems(part, caps.get(name), f"{seed}-problems-{name}") for name, part in parts.items()}


def _subsample_problems(traces: list[Trace], cap: int | None, seed: str) -> list[Trace]:
    ids = sorted({t.problem_id for t in traces})
    if cap is None or len(ids) <= cap:
        return traces
    keep = set(random.Random(seed).sample(ids, cap))
    return [t for t in traces if t.problem_id in keep]


def split_heldout_pairs(
    pairs: Sequence[TracePair], val_fraction: float, seed: int | str
) -> tuple[list[TracePair], list[TracePair]]:
    """(val, test) pairs of a held-out source, split by problem: no problem on both sides.

    Problems are stratified by whether their pairs hold both classes ("mixed") or one: each stratum's sorted ids
    are shuffled (seeded) and ``round(val_fraction * n)`` of them go to val, at least one of a stratum of two or
    more, and at least one stays for test; so on a set where few problems have two answers (Qwen2.5-Math: 4 of
    50) both sides still get different-answer pairs. Raises ``ValueError`` when a side would be empty.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1) to split a held-out source, got {val_fraction}")
    labels: dict[str, set[int]] = {}
    for p in pairs:
        labels.setdefault(str(p.a.problem_id), set()).add(p.label)
    val_ids: set[str] = set()
    rng = random.Random(f"{seed}-heldout")
    for mixed in (True, False):
        ids = sorted(i for i, ls in labels.items() if (len(ls) == 2) == mixed)
        rng.shuffle(ids)
        n = math.floor(val_fraction * len(ids) + 0.5)
        if len(ids) >= 2:
            n = min(max(n, 1), len(ids) - 1)
        val_ids.update(ids[:n])
    val = [p for p in pairs if str(p.a.problem_id) in val_ids]
    test = [p for p in pairs if str(p.a.problem_id) not in val_ids]
    if not val or not test:
        raise ValueError(
            f"{len(labels)} problems with pairs cannot fill both val ({len(val)} pairs) and test ({len(test)} pairs)"
        )
    return val, test


def cap_pair_problems(pairs: list[TracePair], cap: int | None, seed: str) -> list[TracePair]:
    """The pairs of a seeded subsample of ``cap`` of their problems (all of them when ``cap`` is None or larger)."""
    ids = sorted({str(p.a.problem_id) for p in pairs})
    if cap is None or len(ids) <= cap:
        return list(pairs)
    keep = set(random.Random(seed).sample(ids, cap))
    return [p for p in pairs if str(p.a.problem_id) in keep]
