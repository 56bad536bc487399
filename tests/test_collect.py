"""`python -m deepprune.collect` on the tiny Qwen3: trace JSONL fields, exact resume, bad input before any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException, MissingConfigException
from omegaconf import open_dict

from deepprune.runtime import CONF_DIR


def _cfg(overrides: list[str], model_dir: Path | None = None):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="collect", overrides=overrides)
    if model_dir is not None:
        with open_dict(cfg):
            cfg.generator.model = str(model_dir)
    return cfg


def _tiny_overrides(out: Path) -> list[str]:
    return [
        f"output={out}",
        "n=3",
        "max_problems=2",
        "generator.max_tokens=6",
        "generator.chunk_tokens=4",
        "generator.batch_size=3",
        "generator.temperature=1.0",
        "generator.model_name=tiny-qwen3",
    ]


def test_collect_writes_traces_and_resumes_exactly(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    from deepprune.answers import extract_answer
    from deepprune.collect import main
    from deepprune.traces import read_traces

    out = tmp_path / "traces.jsonl"
    cfg = _cfg(_tiny_overrides(out), tiny_qwen3_dir)
    assert main(cfg)["written"] == 6
    traces = read_traces(out)
    assert len(traces) == 6 and len({t.problem_id for t in traces}) == 2
    for t in traces:
        assert t.model == "tiny-qwen3" and t.sample_id in (0, 1, 2)
        assert t.question and t.gold is not None and t.dataset
        assert 1 <= t.num_tokens <= 6 and len(t.token_confidences) == t.num_tokens
        assert t.finished is True  # a trace either hit EOS or used its whole budget
        assert t.meta["hit_max_tokens"] == (t.num_tokens == 6) and t.meta["generator"] == "HFGenerator"
        # a sample that used its whole budget was cut: only a boxed answer counts, nothing read from its last words
        assert t.answer == extract_answer(t.text, finished=not t.meta["hit_max_tokens"])
    assert len({t.text for t in traces}) > 1

    # a crash in the middle of the second problem: its last two samples are lost
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:4]))
    counts = main(_cfg(_tiny_overrides(out), tiny_qwen3_dir))
    assert counts["written"] == 2 and counts["skipped"] == 4
    redone = out.read_text().splitlines(keepends=True)
    assert sorted(json.loads(x)["text"] for x in redone) == sorted(json.loads(x)["text"] for x in lines)
    # a complete file: nothing to do
    assert main(_cfg(_tiny_overrides(out), tiny_qwen3_dir)).get("written", 0) == 0


def test_problem_file_without_questions_fails_before_the_model_loads(tmp_path: Path, monkeypatch) -> None:
    from deepprune.collect import main
    from deepprune.online.generators import hf

    def no_engine(*args, **kwargs):
        raise AssertionError("the generator must not be built for bad input")

    monkeypatch.setattr(hf.HFGenerator, "__init__", no_engine)
    bad = tmp_path / "problems.jsonl"
    bad.write_text(json.dumps({"id": "a", "answer": "1"}) + "\n" + json.dumps({"id": "b", "answer": "2"}) + "\n")
    cfg = _cfg([f"output={tmp_path / 'out.jsonl'}", "problems=jsonl", f"problems.path={bad}"])
    # the loader names the file and line (Hydra wraps it in an InstantiationException)
    with pytest.raises((ValueError, InstantiationException), match=r"problems\.jsonl:1: no question"):
        main(cfg)
    assert not (tmp_path / "out.jsonl").exists()


def test_unknown_generator_is_rejected_at_composition() -> None:
    with pytest.raises(MissingConfigException, match="nope"):
        _cfg(["generator=nope"])


@pytest.mark.parametrize("name", ["hf", "vllm"])
def test_generator_configs_hold_paper_defaults(name: str) -> None:
    cfg = _cfg([f"generator={name}"])
    assert cfg.generator.temperature == 0.6 and cfg.generator.top_p == 0.95 and cfg.generator.logprobs == 20
    assert cfg.generator._target_.endswith("HFGenerator" if name == "hf" else "VLLMGenerator")
