"""Offline evaluation of a pair judge: labelled held-out pairs, and scoring them resumably.

Used by ``python -m deepprune.evaluate`` (the entry module only wires config to these):

- :func:`sample_pairs`: within-(problem, model) pairs, a seeded subsample stratified by model, labelled by the one
  answer-equivalence check.
- :func:`score_pairs_resumable`: scores pairs in chunks and appends one JSON line per pair to ``scores.jsonl``, so
  an interrupted run resumes. The evaluation's *fingerprint* (everything that changes a score: the judge, its
  prefix rule, the pair sample) is stored beside the file; a rerun with a different one refuses to mix results.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepprune.judge.scores import score_record
from deepprune.runtime import append_jsonl, get_logger, progress, read_jsonl_records, write_json

if TYPE_CHECKING:
    from deepprune.answers import AnswerChecker
    from deepprune.judge.scorers import PairScorer
    from deepprune.pairs import TracePair
    from deepprune.traces import Trace

__all__ = ["fingerprint_path", "sample_pairs", "score_pairs_resumable"]

log = get_logger(__name__)


def sample_pairs(
    traces: Iterable[Trace], max_pairs: int | None, seed: int, checker: AnswerChecker | None = None
) -> tuple[list[TracePair], int]:
    """Within-(problem, model) pairs, a seeded subsample stratified by model, labelled by answer equivalence.

    Returns (pairs, excluded): `deepprune.pairs.TracePair`s in a stable order and the number of traces left out
    by the pair labels' rule (`deepprune.pairs.with_answer`: unfinished, judged cut, or without an answer). With
    `max_pairs`, each model gets an equal share (or all its pairs when it has fewer), so per-model metrics rest on
    similar counts. Only the sampled pairs are labelled (one
    `checker.equivalent` call each), which keeps evaluation quick when answer checking is slow.
    """
    from deepprune.answers import get_checker
    from deepprune.pairs import TracePair, group_traces, with_answer

    checker = checker or get_checker()
    excluded = 0
    by_model: dict[str, list[tuple[Trace, Trace]]] = {}
    for (_, model), members in group_traces(traces).items():
        usable = []
        for t in members:
            answered, _ = with_answer(t)  # the pair labels' rule: unfinished and answerless traces stay out
            if answered is None:
                excluded += 1
                continue
            usable.append(answered)
        candidates = by_model.setdefault(str(model), [])
        candidates.extend((usable[i], usable[j]) for i in range(len(usable)) for j in range(i + 1, len(usable)))
    models = sorted(by_model)
    chosen: list[tuple[Trace, Trace]] = []
    for rank, model in enumerate(models):
        candidates = by_model[model]
        if max_pairs is not None:
            share = max_pairs // len(models) + (1 if rank < max_pairs % len(models) else 0)
            if share < len(candidates):
                keep = sorted(random.Random(f"{seed}-pairs-{model}").sample(range(len(candidates)), share))
                candidates = [candidates[i] for i in keep]
        chosen.extend(candidates)
    pairs = [TracePair(a, b, int(checker.equivalent(a.answer, b.answer))) for a, b in chosen]
    return pairs, excluded


def fingerprint_path(scores_file: str | Path) -> Path:
    """Where the fingerprint of the evaluation that wrote ``scores_file`` is kept."""
    path = Path(scores_file)
    return path.with_name(path.name + ".fingerprint.json")


def _check_fingerprint(path: Path, fingerprint: Mapping[str, Any]) -> None:
    stored_file = fingerprint_path(path)
    wanted = json.loads(json.dumps(dict(fingerprint), default=str))  # compare as JSON, as stored
    if stored_file.is_file():
        stored = json.loads(stored_file.read_text(encoding="utf-8"))
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise ValueError(
                f"{path} was written by a different evaluation (changed: {changed}); its scores cannot be reused. "
                "Use a fresh run dir (or delete the file to start over)"
            )
    elif path.is_file() and read_jsonl_records(path):
        raise ValueError(
            f"{path} has scores but no {stored_file.name}: cannot tell what wrote them; use a fresh run dir"
        )
    else:
        write_json(stored_file, wanted)


def score_pairs_resumable(
    scorer: PairScorer,
    items: Sequence[dict[str, Any]],
    path: str | Path,
    chunk_size: int = 64,
    fingerprint: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Score `items` ({"i", "a", "b", ...}) and append one JSON line per pair to `path`; returns every record.

    Records already in `path` (a previous, interrupted run of the same evaluation) are reused. ``fingerprint``
    (plain data naming the judge, its rule and the pair sample) must equal the one stored with them, and a record
    whose identifying fields differ from the item at its index means a different evaluation: both raise.
    """
    path = Path(path)
    if fingerprint is not None:
        _check_fingerprint(path, fingerprint)
    done = {}
    for rec in read_jsonl_records(path):
        item = items[rec["i"]] if rec["i"] < len(items) else None
        if item is None or any(rec.get(k) != item.get(k) for k in ("problem_id", "model", "label")):
            raise ValueError(f"{path}: record {rec['i']} does not match this evaluation; use a fresh output dir")
        done[rec["i"]] = rec
    if done:
        log.info("resuming: %d of %d pairs already scored in %s", len(done), len(items), path)
    todo = [it for it in items if it["i"] not in done]
    chunks = [todo[k : k + chunk_size] for k in range(0, len(todo), chunk_size)]
    for chunk in progress(chunks, desc="scoring", total=len(chunks), unit="chunk"):
        scores = scorer.score([(it["a"], it["b"]) for it in chunk])
        for it, score in zip(chunk, scores):
            # the one scores.jsonl schema, as train writes it (judge/scores.py)
            rec = score_record(
                it["i"], it["label"], float(score), model=it.get("model"), problem_id=it.get("problem_id")
            )
            append_jsonl(path, rec)
            done[it["i"]] = rec
    return [done[it["i"]] for it in items]
