"""CUDA training throughput of the generative judge at Qwen3-4B shape (random weights, nothing downloaded).

Builds a Qwen3 causal LM from a Qwen3-4B-Instruct-2507-shaped config (36 layers, hidden 2560, 32/8 heads,
head_dim 128, vocab 151,936) with random bf16 weights on the GPU, wraps it as a `GenerativeHead` with LoRA
(r=16 on all linear layers, gradient checkpointing) and runs a few AdamW steps of the judge loss on batches of
2 x 1024 tokens (two 500-token prefixes plus the prompt: the paper's setting). Reports training tokens/s and
peak GPU memory. Without CUDA it says so and exits with status 0.

    python benchmarks/cuda_judge.py                      # Qwen3-4B shape, 2 x 1024, 5 measured steps
    python benchmarks/cuda_judge.py --layers 4 --steps 3 # a quick smoke run
    python benchmarks/cuda_judge.py --finetune full      # full fine-tuning instead of LoRA
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

log = logging.getLogger("cuda_judge")

#: Qwen3-4B-Instruct-2507's architecture (config.json of the hub model)
QWEN3_4B = dict(
    vocab_size=151936,
    hidden_size=2560,
    intermediate_size=9728,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=262144,
    rope_theta=5_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def build_head(
    config_overrides: dict[str, Any],
    device: str,
    dtype: str,
    finetune: str,
    lora_r: int,
    grad_ckpt: bool,
    tokenizer: Any = None,
) -> Any:
    """A GenerativeHead on a randomly initialised Qwen3 of the given shape (default: the real Qwen tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from deepprune.assets import qwen_tokenizer
    from deepprune.judge.backbone import prepare_for_finetuning, resolve_dtype
    from deepprune.judge.heads import GenerativeHead

    tokenizer = tokenizer if tokenizer is not None else qwen_tokenizer()
    shape = QWEN3_4B | config_overrides
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id < shape["vocab_size"] else None  # shrunk test vocab
    config = Qwen3Config(**shape, pad_token_id=pad)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype))
    model = prepare_for_finetuning(model, finetune, "causal_lm", lora_r, 2 * lora_r, 0.0, "all-linear", grad_ckpt)
    return GenerativeHead(model, tokenizer, name_or_path="random-qwen3", finetune=finetune)


def run_benchmark(
    config_overrides: dict[str, Any] | None = None,
    batch_size: int = 2,
    seq_len: int = 1024,
    steps: int = 5,
    warmup: int = 2,
    device: str = "cuda",
    dtype: str = "bfloat16",
    finetune: str = "lora",
    lora_r: int = 16,
    gradient_checkpointing: bool = True,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """Train the judge head for `warmup + steps` steps on random token batches; returns the measurements."""
    import torch

    head = build_head(config_overrides or {}, device, dtype, finetune, lora_r, gradient_checkpointing, tokenizer)
    head.train()
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    vocab = min(len(head.tokenizer), head.backbone.config.vocab_size) - 32
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, elapsed = [], 0.0
    for step in range(warmup + steps):
        ids = torch.randint(0, vocab, (batch_size, seq_len), generator=gen).to(device)
        mask = torch.ones_like(ids)
        labels = torch.randint(0, 2, (batch_size,), generator=gen).to(device)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(head(ids, mask), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            elapsed += time.perf_counter() - start
        losses.append(loss.detach().item())
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in head.parameters())
    return {
        "device": torch.cuda.get_device_name() if cuda else device,
        "dtype": dtype,
        "finetune": finetune,
        "layers": head.backbone.config.num_hidden_layers if hasattr(head.backbone, "config") else None,
        "batch": [batch_size, seq_len],
        "steps": steps,
        "tokens_per_s": batch_size * seq_len * steps / elapsed if elapsed > 0 else float("nan"),
        "s_per_step": elapsed / max(steps, 1),
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "trainable_params": trainable,
        "total_params": total,
        "losses": losses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=QWEN3_4B["num_hidden_layers"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--finetune", choices=["lora", "full"], default="lora")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--no-grad-ckpt", action="store_true", help="disable gradient checkpointing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    import torch

    if not torch.cuda.is_available():
        log.info("CUDA is not available on this machine: nothing to benchmark (run this on a GPU host).")
        return 0
    result = run_benchmark(
        {"num_hidden_layers": args.layers},
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        steps=args.steps,
        warmup=args.warmup,
        dtype="bfloat16" if torch.cuda.is_bf16_supported() else "float16",
        finetune=args.finetune,
        lora_r=args.lora_r,
        gradient_checkpointing=not args.no_grad_ckpt,
    )
    log.info(
        "%s, %s %s, %d layers, batch %s: %.0f tokens/s (%.2f s/step), peak GPU memory %.1f GiB",
        result["device"], result["dtype"], result["finetune"], result["layers"], result["batch"],
        result["tokens_per_s"], result["s_per_step"], result["peak_gpu_mem_gib"],
    )  # fmt: skip
    log.info(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
