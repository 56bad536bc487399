"""Export a trained judge: Lightning checkpoint -> plain Hugging Face folder or PEFT adapter.

    python -m deepprune.export ckpt_path=logs/train/runs/<ts>/checkpoints/best.ckpt
    python -m deepprune.export ckpt_path=... out_dir=judges/qwen3-lora merge_lora=true

The head is rebuilt from the training run's `.hydra/config.yaml`; the truncation settings of that run are
stored in `deepprune_judge.json`, so evaluation and online pruning truncate exactly as in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR, get_logger

log = get_logger(__name__)


def training_meta(train_cfg: DictConfig, head: Any, ckpt_path: Path) -> dict[str, Any]:
    """What the export records about its training run: the truncation rule (as the DataModule reports it)."""
    from deepprune.truncation import DEFAULT_REASONING_WORDS, WordTruncator

    meta: dict[str, Any] = {"checkpoint": str(ckpt_path)}
    data = train_cfg.get("data") or {}
    if data.get("truncation") == "words":
        meta["truncation"] = WordTruncator(
            data.get("word_k", 25), data.get("reasoning_words") or DEFAULT_REASONING_WORDS
        ).settings
    elif data.get("truncation") == "tokens":
        meta["truncation"] = {
            "kind": "tokens",
            "k": data.get("token_k", 500),
            "tokenizer": head.tokenizer.name_or_path,
        }
    return meta


def export(cfg: DictConfig) -> Path:
    """Rebuild, load and export the head of `cfg.ckpt_path`; returns the export folder."""
    from deepprune.judge.export import export_head, head_from_checkpoint

    head, train_cfg = head_from_checkpoint(cfg.ckpt_path, cfg.train_config)
    ckpt = Path(cfg.ckpt_path).resolve()
    out_dir = Path(cfg.out_dir) if cfg.out_dir else ckpt.parent.parent / "export"
    return export_head(head, out_dir, training_meta(train_cfg, head, ckpt), merge_lora=cfg.merge_lora)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    log.info("judge exported to %s", export(cfg))


if __name__ == "__main__":
    main()
