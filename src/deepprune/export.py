"""Export a trained judge: Lightning checkpoint -> plain Hugging Face folder or PEFT adapter.

    python -m deepprune.export ckpt_path=logs/train/runs/<ts>/checkpoints/best.ckpt
    python -m deepprune.export ckpt_path=... out_dir=judges/qwen3-lora merge_lora=true

The head is rebuilt from the training run's `.hydra/config.yaml`; the prefix rule of that run (its `truncation`)
is stored in `deepprune_judge.json`, so evaluation and online pruning cut exactly as in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR, get_logger

log = get_logger(__name__)


def training_meta(train_cfg: DictConfig, head: Any, ckpt_path: Path) -> dict[str, Any]:
    """What the export records about its training run: the checkpoint and the prefix rule (its `truncation`)."""
    from hydra.utils import instantiate

    from deepprune.truncation import TokenPrefix, WordPrefix

    meta: dict[str, Any] = {"checkpoint": str(ckpt_path)}
    if train_cfg.get("truncation") is not None:
        rule = instantiate(train_cfg.truncation)
    else:  # a run from before the `truncation` group: its data.* keys
        data = train_cfg.get("data") or {}
        if data.get("truncation") == "words":
            rule = WordPrefix(int(data.get("word_k", 25)), data.get("reasoning_words"))
        else:
            rule = TokenPrefix(int(data.get("token_k", 500)))
    meta["truncation"] = rule.bind(head.tokenizer).to_record()
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
