"""Offline evaluation: pair sampling, prefix rules, resumable scoring, the scorers and the entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ExactChecker
from hydra import compose, initialize_config_dir

from deepprune.evaluate import evaluate
from deepprune.judge.evaluation import sample_pairs, score_pairs_resumable
from deepprune.judge.scorers import EmbeddingScorer, HeadScorer, ZeroShotLLMScorer
from deepprune.runtime import CONF_DIR, read_jsonl_records
from deepprune.traces import Trace, write_traces
from deepprune.truncation import WordPrefix, rule_from_record


def _traces() -> list[Trace]:
    """2 models x 3 problems x 4 traces; answers fixed so the labels are known."""
    answers = {"p0": ["7", "7", "8", None], "p1": ["1", "2", "3", "4"], "p2": ["5", "5", "5", "5"]}
    out = []
    for model in ("m-a", "m-b"):
        for pid, ans in answers.items():
            for i, a in enumerate(ans):
                text = f"Wait, consider problem {pid}. Thus we compute step {i}. " * 3
                text += f"The answer is \\boxed{{{a}}}." if a else "I could not finish."
                out.append(Trace(problem_id=pid, text=text, model=model, sample_id=i, answer=a))
    return out


def test_sample_pairs_all_and_labels():
    pairs, excluded = sample_pairs(_traces(), None, seed=0, checker=ExactChecker())
    # per model: p0 has 3 usable traces (3 pairs, 1 same), p1 6 pairs (0 same), p2 6 pairs (6 same)
    assert excluded == 2 and len(pairs) == 2 * (3 + 6 + 6)
    assert sum(p.label for p in pairs) == 2 * (1 + 0 + 6)
    assert all(p.a.problem_id == p.b.problem_id and p.a.model == p.b.model for p in pairs)


def test_sample_pairs_stratified_and_seeded():
    pairs, _ = sample_pairs(_traces(), 11, seed=3, checker=ExactChecker())
    models = [p.a.model for p in pairs]
    assert len(pairs) == 11 and models.count("m-a") == 6 and models.count("m-b") == 5
    again, _ = sample_pairs(_traces(), 11, seed=3, checker=ExactChecker())
    assert [(p.a.sample_id, p.b.sample_id, p.a.problem_id) for p in pairs] == [
        (p.a.sample_id, p.b.sample_id, p.a.problem_id) for p in again
    ]


def test_rule_from_record(tiny_tokenizer):
    words = rule_from_record({"kind": "words", "k": 2, "words": ["wait", "thus"]})
    assert words("a wait b thus c wait d") == "a wait b thus"
    tokens = rule_from_record({"kind": "tokens", "k": 3}, tiny_tokenizer)
    text = "Wait, so the answer is 42 and more"
    assert tiny_tokenizer.encode(tokens(text)) == tiny_tokenizer.encode(text)[:3]
    with pytest.raises(ValueError, match="tokenizer"):
        rule_from_record({"kind": "tokens", "k": 3}).cut(text)
    with pytest.raises(ValueError, match="'tokens' or 'words'"):
        rule_from_record({"kind": "chars", "k": 3})


class CountingScorer:
    def __init__(self):
        self.calls = 0

    def score(self, pairs):
        self.calls += len(pairs)
        return np.array([len(a) / (len(a) + len(b)) for a, b in pairs])


def test_score_pairs_resumable(tmp_path):
    items = [
        {"i": i, "problem_id": "p", "model": "m", "label": i % 2, "a": "x" * (i + 1), "b": "yy"} for i in range(10)
    ]
    path = tmp_path / "scores.jsonl"
    first = score_pairs_resumable(CountingScorer(), items[:4], path, chunk_size=3)
    assert [r["i"] for r in read_jsonl_records(path)] == [0, 1, 2, 3]
    with path.open("a") as fh:
        fh.write('{"i": 4, "probl')  # a torn last line from a crash
    scorer = CountingScorer()
    records = score_pairs_resumable(scorer, items, path, chunk_size=3)
    assert scorer.calls == 6  # only the 6 not yet scored
    assert records[:4] == first and [r["i"] for r in records] == list(range(10))
    assert records[9]["score"] == pytest.approx(10 / 12) and "a" not in records[9]
    changed = [dict(it, label=1 - it["label"]) for it in items]
    with pytest.raises(ValueError, match="does not match"):
        score_pairs_resumable(CountingScorer(), changed, path)


def test_embedding_scorer_invariants():
    scorer = EmbeddingScorer(max_tokens=16)
    base = "Let us compute the sum of the first ten positive integers, which is fifty five."
    scores = scorer.score([(base, base), (base, base + " And then many other words follow here."), ("x", "y")])
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores[1] == pytest.approx(1.0, abs=1e-6)  # differs only after the first 16 word pieces
    assert scores[2] < 0.99
    swapped = scorer.score([("x", "y")])
    assert swapped[0] == pytest.approx(scores[2], abs=1e-6)
    assert scorer.embed([base]).shape == (1, 384)


def test_zero_shot_scorer(tiny_generative_head, tiny_classifier_head):
    scorer = ZeroShotLLMScorer(tiny_generative_head, batch_size=2)
    scores = scorer.score([("a", "b"), ("so 7", "thus 7"), ("c", "d")])
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    assert not any(p.requires_grad for p in tiny_generative_head.parameters())
    with pytest.raises(TypeError, match="generative head"):
        ZeroShotLLMScorer(tiny_classifier_head)


def _compose(tmp_path, overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="evaluate", overrides=[f"scores_file={tmp_path}/out/scores.jsonl", *overrides])


def test_evaluate_exported_judge_end_to_end(tmp_path, tiny_classifier_head):
    from deepprune.judge.export import export_head

    trace_file = write_traces(tmp_path / "traces.jsonl", _traces())
    export = export_head(tiny_classifier_head, tmp_path / "judge", {"truncation": {"kind": "words", "k": 2}})
    cfg = _compose(
        tmp_path,
        [
            "source=jsonl",
            f"source.path={trace_file}",
            "test_models=[m-a,m-b]",
            "judge=exported",
            f"judge.export_dir={export}",
        ],
    )
    result = evaluate(cfg)
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["truncation"] == WordPrefix(2).to_record()  # the export's rule, not the truncation group
    assert metrics["pairs"] == 30 and metrics["excluded_traces"] == 2
    assert set(metrics["metrics"]) == {"m-a", "m-b", "average"}
    assert metrics["metrics"]["m-a"]["n"] == 15 and metrics["metrics"]["m-a"]["pos"] == 7
    assert (out / "roc.png").stat().st_size > 1000
    records = read_jsonl_records(out / "scores.jsonl")
    assert len(records) == 30 and {"i", "problem_id", "model", "label", "score"} <= set(records[0])
    # the scores are the exported judge's on the truncated, order-shuffled texts: rescoring agrees
    scorer = HeadScorer(tiny_classifier_head.eval())
    assert result["average_auroc"] == pytest.approx(metrics["average_auroc"])
    assert all(0 <= r["score"] <= 1 for r in records) and scorer.head is tiny_classifier_head
    # a rerun in the same dir resumes: nothing is rescored, the same metrics come out
    assert evaluate(cfg)["metrics"] == result["metrics"]
    assert len(read_jsonl_records(out / "scores.jsonl")) == 30
    # the old spelling still works for a release (scorer=exported scorer.path=...), with the same scores
    old = _compose(tmp_path, ["source=jsonl", f"source.path={trace_file}", "test_models=[m-a,m-b]",
                              "scorer=exported", f"scorer.path={export}"])  # fmt: skip
    assert old.scorer.path == str(export)
    # ... but it is another evaluation (the judge config differs), so it refuses to reuse the scores (issue 10.8)
    with pytest.raises(ValueError, match="different evaluation"):
        evaluate(old)
    old_result = evaluate(_compose(tmp_path / "old", [*old_overrides(trace_file), f"scorer.path={export}"]))
    assert old_result["metrics"] == result["metrics"]


def old_overrides(trace_file):
    return ["source=jsonl", f"source.path={trace_file}", "test_models=[m-a,m-b]", "scorer=exported"]


def test_evaluate_refuses_scores_of_another_judge(tmp_path):
    """Issue 10.8: a rerun in the same run dir with another judge must not report the old judge's scores."""
    trace_file = write_traces(tmp_path / "traces.jsonl", _traces())
    base = ["source=jsonl", f"source.path={trace_file}", "test_models=[m-a]", "max_pairs=4"]
    first = evaluate(_compose(tmp_path, [*base, "judge.scorer.max_tokens=16"]))
    assert first["pairs"] == 4
    with pytest.raises(ValueError, match=r"different evaluation \(changed: \['judge'\]\)"):
        evaluate(_compose(tmp_path, [*base, "judge.scorer.max_tokens=8"]))
    with pytest.raises(ValueError, match=r"changed: \['truncation'\]"):
        evaluate(_compose(tmp_path, [*base, "judge.scorer.max_tokens=16", "truncation=words"]))


def test_evaluate_rejects_unknown_test_model(tmp_path):
    trace_file = write_traces(tmp_path / "traces.jsonl", _traces())
    cfg = _compose(tmp_path, ["source=jsonl", f"source.path={trace_file}", "test_models=[GPT-5]"])
    with pytest.raises(ValueError, match=r"GPT-5.*its models: \['m-a', 'm-b'\]"):
        evaluate(cfg)


def test_evaluate_zero_shot_llm_config(tmp_path, deepprune_cache_dir):
    trace_file = write_traces(tmp_path / "traces.jsonl", _traces())
    overrides = ["source=jsonl", f"source.path={trace_file}", "test_models=null", "max_pairs=6"]
    overrides += ["judge=zeroshot_llm", "model=tiny", "model.finetune=frozen", "truncation=words", "truncation.k=1"]
    result = evaluate(_compose(tmp_path, overrides))
    assert result["pairs"] == 6 and result["test_models"] == ["m-a", "m-b"]
    assert result["truncation"] == WordPrefix(1).to_record()
    assert all(0 < r["score"] < 1 for r in read_jsonl_records(tmp_path / "out" / "scores.jsonl"))
