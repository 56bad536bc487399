"""The CUDA training path (benchmarks/cuda_judge.py) and bf16 LoRA on CPU.

The GPU test runs a 2-layer Qwen3-4B-shaped judge on CUDA when a device is present; the rest runs anywhere.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "cuda_judge.py"
MICRO = {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2}
MICRO |= {"num_key_value_heads": 1, "head_dim": 32, "vocab_size": 4096}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("cuda_judge", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bf16_lora_forward_backward_on_cpu(tiny_qwen3_dir):
    from deepprune.judge.heads import generative_head

    head = generative_head(tiny_qwen3_dir, finetune="lora", lora_r=4, dtype="bfloat16", gradient_checkpointing=True)
    head.train()
    assert head.backbone.get_base_model().model.embed_tokens.weight.dtype == torch.bfloat16
    ids, mask = head.collate([("Wait, x = 2", "Thus x = 3"), ("so 7", "hence 7 and 7")])
    logits = head(ids, mask)
    assert logits.shape == (2, 2) and logits.dtype == torch.float32  # label logits are upcast for the loss
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    lora = [p for n, p in head.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is not None and torch.isfinite(p.grad.float()).all() for p in lora)
    assert any(p.grad.abs().sum() > 0 for p in lora)


def test_benchmark_runs_micro_config_on_cpu(bench, tiny_tokenizer):
    result = bench.run_benchmark(
        MICRO, batch_size=2, seq_len=48, steps=2, warmup=1, device="cpu", lora_r=4, tokenizer=tiny_tokenizer
    )
    assert result["batch"] == [2, 48] and result["layers"] == 1 and result["peak_gpu_mem_gib"] is None
    assert len(result["losses"]) == 3 and all(math.isfinite(x) for x in result["losses"])
    assert 0 < result["trainable_params"] < result["total_params"] and result["tokens_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message printed without CUDA")
def test_benchmark_exits_cleanly_without_cuda(bench, caplog):
    with caplog.at_level(logging.INFO, logger="cuda_judge"):
        assert bench.main(["--steps", "1"]) == 0
    assert "CUDA is not available" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_benchmark_small_qwen3_4b_shape_on_cuda(bench):
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    result = bench.run_benchmark({"num_hidden_layers": 2}, seq_len=256, steps=2, warmup=1, device="cuda", dtype=dtype)
    assert result["peak_gpu_mem_gib"] > 0 and all(math.isfinite(x) for x in result["losses"])
    assert result["trainable_params"] < result["total_params"] / 10
