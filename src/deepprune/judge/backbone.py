"""Loading judge backbones with transformers and preparing them for full, LoRA or QLoRA fine-tuning.

`name_or_path` is a local folder or a Hugging Face hub id (the hub works for users with a network; tests only
use folders built by `deepprune.assets`). bitsandbytes (QLoRA) is an optional extra, imported only when asked for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from deepprune.runtime import get_logger

log = get_logger(__name__)

FinetuneMode = Literal["full", "lora", "qlora", "frozen"]
FINETUNE_MODES = ("full", "lora", "qlora", "frozen")
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_DTYPES |= {"float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype = "auto") -> torch.dtype:
    """`auto` means bfloat16 on a CUDA device that supports it, float32 otherwise (CPU training)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # decoder-only tokenizers often lack a pad token; any id works because padded positions are masked
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_finetune(finetune: str) -> None:
    if finetune not in FINETUNE_MODES:
        raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
    if finetune == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            "finetune=qlora needs bitsandbytes (4-bit NF4): `pip install 'deepprune[bnb]'` (bitsandbytes>=0.45)"
        )


def _quantization_config(dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def load_backbone(
    name_or_path: str | Path,
    task: Literal["causal_lm", "seq_cls"],
    finetune: FinetuneMode = "lora",
    dtype: str | torch.dtype = "auto",
    pad_token_id: int | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> nn.Module:
    """A causal LM or a 2-label sequence classifier, 4-bit quantised when `finetune == "qlora"`."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    _check_finetune(finetune)
    torch_dtype = resolve_dtype(dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if finetune == "qlora":
        kwargs["quantization_config"] = _quantization_config(torch_dtype)
    if task == "causal_lm":
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    model = AutoModelForSequenceClassification.from_pretrained(str(name_or_path), num_labels=2, **kwargs)
    if pad_token_id is not None and model.config.pad_token_id is None:
        # decoder classifiers pool the last non-pad token and need to know the pad id
        model.config.pad_token_id = pad_token_id
    return model


def prepare_for_finetuning(
    model: nn.Module,
    finetune: FinetuneMode,
    task: Literal["causal_lm", "seq_cls"],
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] = "all-linear",
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """Wrap `model` for the chosen mode: full (all weights train), frozen (none), lora or qlora (peft adapters).

    For a classifier, peft's SEQ_CLS task keeps the new classification layer trainable and saves it with the
    adapter.
    """
    _check_finetune(finetune)
    gc_kwargs = {"use_reentrant": False}
    if finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=gc_kwargs
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    if gradient_checkpointing and hasattr(model, "config"):
        model.config.use_cache = False
    if finetune in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        targets = target_modules if isinstance(target_modules, str) else list(target_modules)
        config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM" if task == "causal_lm" else "SEQ_CLS",
        )
        model = get_peft_model(model, config)
    elif finetune == "frozen":
        model.requires_grad_(False)
    return model


def is_peft_model(model: nn.Module) -> bool:
    if importlib.util.find_spec("peft") is None:
        return False
    from peft import PeftModel

    return isinstance(model, PeftModel)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
