"""Judge exports: a trained head written as a plain Hugging Face (or PEFT adapter) folder, and read back.

An export folder holds the weights (full, merged, or a LoRA adapter that vLLM's `LoRARequest` loads on top of
the base model named in `deepprune_judge.json`), the tokenizer and `deepprune_judge.json`: head kind, base model,
prompt and label words/ids, max_length, and whatever the caller passes in `meta` (truncation settings, the
training run). Online and offline code load only exports, never Lightning checkpoints. This module is the
export's I/O and nothing else; `deepprune.judge.scorers.load_scorer` is the one loader that turns an export into
a scorer (HF or vLLM backend)::

    export_head(head, "judge/", {"truncation": TokenPrefix(500).to_record()})
    head = load_head("judge/")                      # the head, eval mode, no grad
    rule = recorded_rule(read_judge_record("judge/"), head.tokenizer)
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from deepprune.judge.backbone import is_peft_model, load_backbone, load_tokenizer
from deepprune.judge.heads import ClassifierHead, GenerativeHead, JudgeHead
from deepprune.judge.prompt import JudgePrompt
from deepprune.judge.siamese import siamese_head  # noqa: F401  registers the siamese model type for load_head
from deepprune.runtime import get_logger, write_json
from deepprune.truncation import PrefixRule, rule_from_record

log = get_logger(__name__)

JUDGE_FILE = "deepprune_judge.json"
FORMAT_VERSION = 1


def export_head(
    head: JudgeHead, out_dir: str | Path, meta: Mapping[str, Any] | None = None, merge_lora: bool = False
) -> Path:
    """Write `head` as a loadable folder; returns `out_dir`.

    LoRA heads are written as a PEFT adapter (`adapter_config.json` names the base model) unless `merge_lora`,
    which folds the adapter into a full copy of the weights (the head itself is left untouched). `meta` keys
    are stored at the top level of `deepprune_judge.json`; they must not contradict the head's own fields.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JUDGE_FILE).unlink(missing_ok=True)  # the record is written last: its presence means complete
    record = dict(meta or {})
    head_meta = head.export_meta()
    for key, value in head_meta.items():
        if key in record and record[key] != value:
            raise ValueError(f"export meta key {key!r}={record[key]!r} contradicts the head's {value!r}")
    adapter = is_peft_model(head.backbone) and not merge_lora
    if is_peft_model(head.backbone) and merge_lora and head.finetune == "qlora":
        raise ValueError("a QLoRA head cannot be merged into 4-bit weights; export it as an adapter")
    backbone = head.backbone
    if is_peft_model(backbone) and merge_lora:
        backbone = copy.deepcopy(backbone).merge_and_unload()
    backbone.save_pretrained(out_dir)
    head.tokenizer.save_pretrained(out_dir)
    record |= head_meta | {"adapter": adapter, "format_version": FORMAT_VERSION}
    if not adapter:
        record["base_model"] = None  # self-contained: the weights are in this folder
        record["merged_from"] = head_meta["base_model"] if is_peft_model(head.backbone) else None
    elif not Path(head.name_or_path).exists():
        log.info("adapter export: base model %s must be reachable (hub id) where it is loaded", head.name_or_path)
    write_json(out_dir / JUDGE_FILE, record)
    log.info("exported %s judge to %s (%s)", head.kind, out_dir, "adapter" if adapter else "full weights")
    return out_dir


def read_judge_record(export_dir: str | Path) -> dict[str, Any]:
    path = Path(export_dir) / JUDGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {export_dir} is not a deepprune judge export")
    record = json.loads(path.read_text())
    if record.get("kind") not in ("generative", "classifier"):
        raise ValueError(f"{path}: 'kind' must be generative or classifier, got {record.get('kind')!r}")
    return record


def head_from_record(export_dir: str | Path, record: dict[str, Any], backbone: Any, tokenizer: Any) -> JudgeHead:
    """The head an export describes, around ``backbone`` (for pair encoding alone, any module will do: the
    vLLM judge passes ``torch.nn.Identity()``); a generative head's label token ids must match the record's."""
    name = record.get("base_model") or str(export_dir)
    if record["kind"] == "generative":
        head: JudgeHead = GenerativeHead(
            backbone,
            tokenizer,
            JudgePrompt.from_dict(record["prompt"]),
            name,
            record["finetune"],
            record["max_length"],
        )
        saved = record["label_token_ids"]
        if head.label_token_ids != (saved["different"], saved["same"]):
            raise ValueError(f"{export_dir}: label token ids {head.label_token_ids} differ from the saved {saved}")
        return head
    return ClassifierHead(
        backbone, tokenizer, name, record["finetune"], record["max_length"], record.get("pair_separator", "\n\n")
    )


def load_head(export_dir: str | Path, device: str = "cpu", dtype: str = "auto") -> JudgeHead:
    """Rebuild the head of an export in eval mode with gradients off."""
    export_dir = Path(export_dir)
    record = read_judge_record(export_dir)
    task = "causal_lm" if record["kind"] == "generative" else "seq_cls"
    tokenizer = load_tokenizer(export_dir)
    if record["adapter"]:
        from peft import PeftModel

        # a QLoRA adapter was trained on the 4-bit base: quantise it the same way so the scores match
        base_mode = "qlora" if record["finetune"] == "qlora" else "full"
        base = load_backbone(record["base_model"], task, base_mode, dtype, tokenizer.pad_token_id)
        backbone = PeftModel.from_pretrained(base, str(export_dir))
    else:
        backbone = load_backbone(export_dir, task, "full", dtype, tokenizer.pad_token_id)
    head = head_from_record(export_dir, record, backbone, tokenizer)
    head.to(device).eval().requires_grad_(False)
    return head


def recorded_rule(record: dict[str, Any], tokenizer: Any) -> PrefixRule | None:
    """The prefix rule the judge was trained with (its export's ``truncation``), bound to its tokenizer; None for
    exports that do not record one."""
    settings = record.get("truncation")
    return rule_from_record(settings, tokenizer) if settings else None


def _find_train_config(ckpt_path: Path) -> Path:
    for parent in ckpt_path.resolve().parents:
        candidate = parent / ".hydra" / "config.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no .hydra/config.yaml above {ckpt_path}: pass train_config=<run_dir>/.hydra/config.yaml explicitly"
    )


#: The one-line factories `conf/model/*.yaml` targeted until their model folder became a nested `deepprune.assets`
#: target: old target -> (today's target, the folder's target, keys that moved under name_or_path, the defaults
#: the old factory set that today's differ from). A training run saved before then still exports.
LEGACY_MODEL_TARGETS: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]] = {
    "deepprune.judge.heads.tiny": (
        "deepprune.judge.heads.generative_head", "deepprune.assets.tiny_qwen3_dir", ("cache_dir", "seed"),
        {"finetune": "full", "dtype": "float32"},
    ),
    "deepprune.judge.heads.tiny_classifier": (
        "deepprune.judge.heads.classifier_head", "deepprune.assets.tiny_bert_dir", ("cache_dir", "seed"),
        {"dtype": "float32"},
    ),
    "deepprune.judge.heads.tiny_siamese": (
        "deepprune.judge.siamese.siamese_head", "deepprune.assets.tiny_siamese_dir", ("cache_dir", "seed"),
        {"dtype": "float32"},
    ),
    "deepprune.judge.heads.minilm": ("deepprune.judge.siamese.siamese_head", "deepprune.assets.minilm_dir", (), {}),
    "deepprune.judge.heads.minilm_cross": (
        "deepprune.judge.heads.classifier_head", "deepprune.assets.minilm_dir", (), {"max_length": 256},
    ),
    "deepprune.judge.heads.smollm2": (
        "deepprune.judge.heads.generative_head", "deepprune.assets.smollm2_hf_dir", ("cache_dir",), {},
    ),
}  # fmt: skip


def upgrade_model_config(model: Mapping[str, Any], source: str = "the model config") -> dict[str, Any]:
    """`model` (a plain dict, interpolations unresolved) with a legacy factory target rewritten to today's (see
    `LEGACY_MODEL_TARGETS`), logging a deprecation warning; any other config comes back unchanged."""
    model = dict(model)
    if model.get("_target_") not in LEGACY_MODEL_TARGETS:
        return model
    old = model.pop("_target_")
    target, folder, moved, defaults = LEGACY_MODEL_TARGETS[old]
    log.warning("%s: model._target_=%s is deprecated; read as %s with name_or_path=%s", source, old, target, folder)
    name_or_path = {"_target_": folder} | {key: model.pop(key) for key in moved if key in model}
    return {"_target_": target, "name_or_path": name_or_path} | defaults | model


def head_from_checkpoint(ckpt_path: str | Path, train_config: str | Path | None = None) -> tuple[JudgeHead, Any]:
    """Rebuild the head from a training run's saved config and load its weights from a Lightning checkpoint.

    Returns (head, train_cfg). Checkpoint keys are the JudgeModule's, so the head's start with "head.".
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} not found")
    config_path = Path(train_config) if train_config else _find_train_config(ckpt_path)
    cfg = OmegaConf.load(config_path)
    if "model" not in cfg or "_target_" not in cfg.model:
        raise ValueError(f"{config_path}: no model._target_ to rebuild the judge head from")
    # weights_only=True: unpickling arbitrary objects runs code from the file. JudgeModule keeps its saved
    # hyper-parameters plain (see its __init__), so our checkpoints load this way, as Lightning's resume does.
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{ckpt_path}: refused to load: it holds objects other than tensors and plain values, which could run "
            f"code when unpickled (torch.load weights_only=True): {str(err).splitlines()[0]}"
        ) from None
    state = state.get("state_dict", state)
    head_state = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    if not head_state:
        raise ValueError(f"{ckpt_path}: no 'head.*' weights (keys start with {sorted(state)[:3]})")
    cfg.model = upgrade_model_config(OmegaConf.to_container(cfg.model, resolve=False), str(config_path))
    head = instantiate(cfg.model)
    missing, unexpected = head.load_state_dict(head_state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{ckpt_path} does not match {config_path}'s model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return head.eval(), cfg
