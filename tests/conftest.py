"""Shared pytest fixtures: tiny tokenizer, tiny Qwen3 / BERT model folders and tiny judge heads.

Everything is built in-process from `deepprune.assets` (deterministic, no network, a few seconds per session).
Converted or built models go to a per-session cache directory (DEEPPRUNE_CACHE_DIR), so tests never write
into the repository and `paths.cache_dir` in composed configs points at the same place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session", autouse=True)
def deepprune_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session cache dir for built/converted models; an existing DEEPPRUNE_CACHE_DIR is respected."""
    existing = os.environ.get("DEEPPRUNE_CACHE_DIR")
    if existing:
        return Path(existing)
    path = tmp_path_factory.mktemp("deepprune-cache")
    os.environ["DEEPPRUNE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The 4096-token byte-level BPE (ChatML specials: <|endoftext|>=0 pad, <|im_start|>=1, <|im_end|>=2 eos)."""
    from deepprune.assets import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_qwen3_dir(deepprune_cache_dir: Path) -> Path:
    """A saved 2-layer Qwen3 (hidden 128, head_dim 32) plus tokenizer; loads with from_pretrained and vLLM."""
    from deepprune.assets import tiny_qwen3_dir

    return tiny_qwen3_dir(deepprune_cache_dir)


@pytest.fixture(scope="session")
def tiny_bert_dir(deepprune_cache_dir: Path) -> Path:
    """A saved 2-layer BERT-like encoder plus the tiny tokenizer (base of the tiny classifier judge)."""
    from deepprune.assets import tiny_bert_dir

    return tiny_bert_dir(deepprune_cache_dir)


@pytest.fixture()
def tiny_generative_head(tiny_qwen3_dir: Path):
    """A fresh GenerativeHead on the tiny Qwen3, full fine-tuning, fp32 (function-scoped: tests may train it)."""
    from deepprune.judge.heads import generative_head

    return generative_head(str(tiny_qwen3_dir), finetune="full", dtype="float32")


@pytest.fixture()
def tiny_lora_head(tiny_qwen3_dir: Path):
    """A fresh GenerativeHead on the tiny Qwen3 with LoRA (r=4)."""
    from deepprune.judge.heads import generative_head

    return generative_head(str(tiny_qwen3_dir), finetune="lora", lora_r=4, lora_alpha=8, dtype="float32")


@pytest.fixture()
def tiny_classifier_head(tiny_bert_dir: Path):
    """A fresh ClassifierHead (2 labels) on the tiny BERT-like encoder, full fine-tuning, fp32."""
    from deepprune.judge.heads import classifier_head

    return classifier_head(str(tiny_bert_dir), finetune="full", dtype="float32", max_length=256)
