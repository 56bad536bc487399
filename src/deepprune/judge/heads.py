"""Judge heads: a transformer that maps a pair of truncated traces to two logits, column 1 = "same answer".

Two heads share one contract (used by the training module, export and the online judge):

- `GenerativeHead` (the paper's): a causal LM reads a chat-templated prompt holding both traces; the logits are
  the LM's logits for the two label words at the answer position, so softmax(logits)[:, 1] = P(same). Only the
  two label rows of the output layer are computed, not the full vocabulary.
- `ClassifierHead`: `AutoModelForSequenceClassification` with two labels on the text pair (encoders such as
  MiniLM, or decoders). Its backbone is either a cross-encoder (the pair read as one sequence) or the siamese
  bi-encoder of `deepprune.judge.siamese` (built by its `siamese_head`).

Each has `.tokenizer`, `.encode(a, b) -> list[int]`, `.forward(input_ids, attention_mask) -> [B, 2]` and
`.pad_token_id`. `generative_head` and `classifier_head` at the bottom are what `conf/model/*.yaml` targets, with
the model folder from `deepprune.assets` (a nested `_target_`) or a local path / hub id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepprune.judge.backbone import FinetuneMode, load_backbone, load_tokenizer, prepare_for_finetuning
from deepprune.judge.prompt import JudgePrompt
from deepprune.runtime import get_logger

log = get_logger(__name__)

DEFAULT_LORA_TARGETS = "all-linear"


def pad_batch(seqs: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into (input_ids, attention_mask), both LongTensor[B, T].

    >>> ids, mask = pad_batch([[5, 6, 7], [8]], pad_token_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def label_token_ids(tokenizer: Any, label_words: Sequence[str]) -> tuple[int, int]:
    """Token ids of (same word, different word); each word must be exactly one token."""
    ids = []
    for word in label_words:
        toks = tokenizer.encode(word, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(
                f"label word {word!r} is {len(toks)} tokens {toks} for this tokenizer; "
                "choose label words that are single tokens (set model.prompt.label_words)"
            )
        ids.append(toks[0])
    if ids[0] == ids[1]:
        raise ValueError(f"label words {list(label_words)} map to the same token id {ids[0]}")
    return ids[0], ids[1]


class JudgeHead(nn.Module):
    """Shared plumbing: the backbone, its tokenizer and how it was built (for export and rebuilds)."""

    kind: str = ""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        name_or_path: str,
        finetune: str,
        max_length: int | None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.name_or_path = str(name_or_path)
        self.finetune = finetune
        self.max_length = max_length

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _clip(self, text: str, n_tokens: int) -> str:
        ids = self._ids(text)
        return text if len(ids) <= n_tokens else self.tokenizer.decode(ids[: max(n_tokens, 0)])

    def collate(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and right-pad a batch of (a, b) text pairs."""
        return pad_batch([self.encode(a, b) for a, b in pairs], self.pad_token_id)

    @torch.no_grad()
    def p_same(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """P(same answer) for a batch of pairs (no grad; the caller chooses train/eval mode)."""
        device = next(self.parameters()).device
        ids, mask = self.collate(pairs)
        return self(ids.to(device), mask.to(device)).float().softmax(-1)[:, 1].cpu()

    def encode(self, a: str, b: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def export_meta(self) -> dict[str, Any]:
        """What `deepprune_judge.json` records about this head (besides the caller's meta)."""
        return {
            "kind": self.kind,
            "base_model": self.name_or_path,
            "finetune": self.finetune,
            "max_length": self.max_length,
        }


class GenerativeHead(JudgeHead):
    """Causal-LM judge: logits[B, 2] = (logit of the "different" word, logit of the "same" word) at the last token.

    Args:
        backbone: a causal LM (possibly peft-wrapped).
        tokenizer: its tokenizer (with a chat template, ideally).
        prompt: the judge prompt; its label words must be single tokens.
        max_length: when set, both traces are cut to equal token budgets so the prompt fits.
    """

    kind = "generative"

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        prompt: JudgePrompt | None = None,
        name_or_path: str = "",
        finetune: str = "full",
        max_length: int | None = None,
    ) -> None:
        super().__init__(backbone, tokenizer, name_or_path, finetune, max_length)
        self.prompt = prompt or JudgePrompt()
        same_id, diff_id = label_token_ids(tokenizer, self.prompt.label_words)
        #: (different, same): the column order of the logits
        self.label_token_ids: tuple[int, int] = (diff_id, same_id)
        self._overhead = len(self._ids(self.prompt.render(tokenizer, "", "")))
        if max_length is not None and max_length < self._overhead + 2:
            raise ValueError(
                f"max_length={max_length} leaves no room for the traces: the prompt is {self._overhead} tokens"
            )

    def encode(self, a: str, b: str) -> list[int]:
        ids = self._ids(self.prompt.render(self.tokenizer, a, b))
        budget = None if self.max_length is None else (self.max_length - self._overhead) // 2
        while budget is not None and len(ids) > self.max_length:
            # never cut the end of the prompt: the answer position is the last token
            ids = self._ids(self.prompt.render(self.tokenizer, self._clip(a, budget), self._clip(b, budget)))
            budget -= max(1, (len(ids) - self.max_length + 1) // 2)  # re-tokenising at a cut can add tokens
        return ids

    def _base_model(self) -> nn.Module:
        return self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        base = self._base_model()
        # positions from the mask, so left padding gives the same result as right padding
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = base.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask.long()).argmax(-1)  # the last real token of each row
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        out = base.get_output_embeddings()
        rows = torch.as_tensor(self.label_token_ids, device=h.device)
        logits = h.float() @ out.weight[rows].float().T
        if getattr(out, "bias", None) is not None:
            logits = logits + out.bias[rows].float()
        return logits

    def export_meta(self) -> dict[str, Any]:
        meta = super().export_meta()
        meta |= {
            "prompt": self.prompt.to_dict(),
            "label_words": {"same": self.prompt.same_word, "different": self.prompt.different_word},
            "label_token_ids": {"same": self.label_token_ids[1], "different": self.label_token_ids[0]},
        }
        return meta


class ClassifierHead(JudgeHead):
    """Sequence-classification judge with two labels (0 = different, 1 = same) on the pair (a, b).

    Tokenizers with a pair template (BERT: [CLS] a [SEP] b [SEP]) encode a text pair; others (byte-level BPE)
    get `a + pair_separator + b + eos`. `max_length` truncates the longer text first.
    """

    kind = "classifier"

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        name_or_path: str = "",
        finetune: str = "full",
        max_length: int | None = 512,
        pair_separator: str = "\n\n",
    ) -> None:
        super().__init__(backbone, tokenizer, name_or_path, finetune, max_length)
        self.pair_separator = pair_separator
        self._native_pairs = tokenizer.num_special_tokens_to_add(pair=True) > 0

    def encode(self, a: str, b: str) -> list[int]:
        if self._native_pairs:
            trunc = {"truncation": "longest_first", "max_length": self.max_length} if self.max_length else {}
            return self.tokenizer(a, b, **trunc)["input_ids"]
        ids_a, sep, ids_b = self._ids(a), self._ids(self.pair_separator), self._ids(b)
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        if self.max_length is not None:
            room = self.max_length - len(sep) - len(eos)
            while len(ids_a) + len(ids_b) > room:  # longest first, like the tokenizers' pair truncation
                if len(ids_a) >= len(ids_b):
                    ids_a = ids_a[:-1]
                else:
                    ids_b = ids_b[:-1]
        return ids_a + sep + ids_b + eos

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def export_meta(self) -> dict[str, Any]:
        return super().export_meta() | {"pair_separator": self.pair_separator}


# -- factories (targets of conf/model/*.yaml) --------------------------------------------------------------------


def generative_head(
    name_or_path: str | Path,
    prompt: JudgePrompt | None = None,
    finetune: FinetuneMode = "lora",
    dtype: str = "auto",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] = DEFAULT_LORA_TARGETS,
    gradient_checkpointing: bool = False,
    max_length: int | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> GenerativeHead:
    """A generative judge on a causal LM from a local folder or a hub id."""
    tokenizer = load_tokenizer(name_or_path, trust_remote_code)
    model = load_backbone(
        name_or_path, "causal_lm", finetune, dtype, trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
    )  # fmt: skip
    model = prepare_for_finetuning(
        model, finetune, "causal_lm", lora_r, lora_alpha, lora_dropout, target_modules, gradient_checkpointing
    )
    return GenerativeHead(model, tokenizer, prompt, str(name_or_path), finetune, max_length)


def classifier_head(
    name_or_path: str | Path,
    finetune: FinetuneMode = "full",
    dtype: str = "auto",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] = DEFAULT_LORA_TARGETS,
    gradient_checkpointing: bool = False,
    max_length: int | None = 512,
    pair_separator: str = "\n\n",
    trust_remote_code: bool = False,
) -> ClassifierHead:
    """A 2-label sequence-classification judge; the classification layer is new (seeded by the global RNG)."""
    tokenizer = load_tokenizer(name_or_path, trust_remote_code)
    model = load_backbone(name_or_path, "seq_cls", finetune, dtype, tokenizer.pad_token_id, trust_remote_code)
    model = prepare_for_finetuning(
        model, finetune, "seq_cls", lora_r, lora_alpha, lora_dropout, target_modules, gradient_checkpointing
    )
    return ClassifierHead(model, tokenizer, str(name_or_path), finetune, max_length, pair_separator)
