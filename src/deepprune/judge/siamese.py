"""The siamese (bi-encoder) judge: a BERT encoder that embeds each trace on its own and compares the two.

SentenceBERT-style mean-pooled embeddings of each trace, logit(same) = sum_d w_d u_d v_d + b on the unit vectors
u, v (w = scale, b = bias at the start, so an untrained siamese judge ranks pairs exactly as the SentenceBERT-cosine
reference does). With ``pair_prior`` the pair layer adds c . (u + v) / 2 (c = 0 at the start): a learned prior on
P(same) from what the two traces are about (hard problems split their samples more often), symmetric in the pair.
`SiameseBertForSequenceClassification` is registered with transformers' Auto classes as model type
``deepprune_siamese_bert`` when this module is imported, so an export saves and reloads like any classifier
(`deepprune.judge.export.load_head` imports this module before it loads one). `siamese_head` wraps it in a
`deepprune.judge.heads.ClassifierHead`; `conf/model/minilm.yaml` and `tiny_siamese.yaml` target it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from deepprune.judge.backbone import (
    FinetuneMode,
    _check_finetune,
    load_tokenizer,
    prepare_for_finetuning,
    resolve_dtype,
)
from deepprune.judge.heads import DEFAULT_LORA_TARGETS, ClassifierHead

__all__ = ["MODEL_TYPE", "PairCosine", "SiameseBertConfig", "SiameseBertForSequenceClassification", "siamese_head"]

#: the transformers model type of a siamese export's config.json
MODEL_TYPE = "deepprune_siamese_bert"


class SiameseBertConfig(BertConfig):
    """A BERT encoder used as a siamese pair judge (see `SiameseBertForSequenceClassification`).

    Args:
        pair_scale, pair_bias: start values of the per-dimension weights w and the bias b of
            logit(same) = sum_d w_d u_d v_d + b (u, v: unit-norm mean-pooled embeddings).
        segment_max_tokens: each trace is cut to this many word pieces, [CLS] and [SEP] included (the
            SentenceBERT reference's `max_tokens`).
        split_token_id, start_token_id: the tokenizer's [SEP] and [CLS] ids (a pair arrives as
            [CLS] a [SEP] b [SEP]; b is re-framed as [CLS] b [SEP]).
        pair_prior: add the prior term c . (u + v) / 2 to the logit (`PairCosine`).
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        pair_scale: float = 20.0,
        pair_bias: float = -14.0,
        segment_max_tokens: int = 128,
        split_token_id: int = 102,
        start_token_id: int = 101,
        pair_prior: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pair_scale, self.pair_bias = float(pair_scale), float(pair_bias)
        self.pair_prior = bool(pair_prior)
        self.segment_max_tokens = int(segment_max_tokens)
        self.split_token_id, self.start_token_id = int(split_token_id), int(start_token_id)


class PairCosine(nn.Module):
    """logit(same) = sum_d weight_d u_d v_d + bias: a learnable re-weighting of the cosine of unit vectors.

    With ``prior``, plus ``prior . (u + v) / 2`` (zero at the start): whether two samples agree depends on the
    problem as much as on how alike they are, and a pooled ranking compares pairs of different problems, which the
    cosine alone orders by how alike each problem's samples start.
    """

    def __init__(self, hidden_size: int, scale: float = 20.0, bias: float = -14.0, prior: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((hidden_size,), float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        self.prior = nn.Parameter(torch.zeros(hidden_size)) if prior else None

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        logit = (u * v * self.weight).sum(-1) + self.bias
        if self.prior is not None:
            logit = logit + ((u + v) * 0.5 * self.prior).sum(-1)
        return logit


class SiameseBertForSequenceClassification(BertPreTrainedModel):
    """Siamese BERT judge: both traces are embedded separately (shared weights) and compared.

    Input is a tokenized pair ``[CLS] a [SEP] b [SEP]`` (right or left padded); it is split at the first [SEP]
    into ``[CLS] a [SEP]`` and ``[CLS] b [SEP]``, each cut to ``segment_max_tokens``. Identical segments in a
    batch are encoded once (a trace is in many pairs). Logits are ``[0, logit(same)]``, so softmax column 1 is
    ``sigmoid(logit(same))``.
    """

    config_class = SiameseBertConfig

    def __init__(self, config: SiameseBertConfig) -> None:
        super().__init__(config)
        self.num_labels = 2
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = PairCosine(
            config.hidden_size, config.pair_scale, config.pair_bias, getattr(config, "pair_prior", False)
        )
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, PairCosine):
            module.weight.fill_(self.config.pair_scale)
            module.bias.fill_(self.config.pair_bias)
            if module.prior is not None:
                module.prior.zero_()

    def split_pairs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids_a, mask_a, ids_b, mask_b), each segment framed as [CLS] content [SEP] and right-padded."""
        cfg = self.config
        mask = attention_mask.bool()
        n_rows, width = input_ids.shape
        pos = torch.arange(width, device=input_ids.device)
        start = mask.long().argmax(-1)  # first real token: 0 for right padding
        end = start + mask.sum(-1)  # one past the last real token
        first_sep = torch.where((input_ids == cfg.split_token_id) & mask, pos, width).min(-1).values
        if bool((first_sep >= width).any()):
            raise ValueError(
                f"a pair without the separator token {cfg.split_token_id}: expected [CLS] a [SEP] b [SEP]"
            )
        room = cfg.segment_max_tokens - 2

        def frame(lo: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = n.clamp(min=0, max=room)
            k = torch.arange(int(n.max()) if n_rows else 0, device=input_ids.device)
            content = input_ids.gather(1, (lo[:, None] + k).clamp(max=width - 1))
            content = torch.where(k < n[:, None], content, cfg.pad_token_id or 0)
            ids = torch.full((n_rows, content.shape[1] + 2), cfg.pad_token_id or 0, device=input_ids.device)
            ids[:, 0] = cfg.start_token_id
            ids[:, 1:-1] = content
            ids[torch.arange(n_rows, device=ids.device), n + 1] = cfg.split_token_id
            seg_mask = (torch.arange(ids.shape[1], device=ids.device) < (n + 2)[:, None]).long()
            return ids, seg_mask

        ids_a, mask_a = frame(start + 1, first_sep - start - 1)
        ids_b, mask_b = frame(first_sep + 1, end - first_sep - 2)
        return ids_a, mask_a, ids_b, mask_b

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-norm mean-pooled embeddings (special tokens included, as in SentenceBERT)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()
        m = attention_mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def _weights_version(self) -> tuple[int, ...]:
        # every in-place change of a weight (optimizer step, load_state_dict, a blend's copy_) bumps its version
        return tuple(p._version for p in self.parameters())

    def _embed_unique(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`embed` of distinct segments; without grad (validation, test, scoring) each segment's embedding is
        remembered across batches until a weight changes, so an evaluation pass encodes each trace once however
        many pairs and batches it is in (training, with grad, always encodes)."""
        if torch.is_grad_enabled() or self.training:
            return self.embed(ids, mask)
        version = self._weights_version()
        if getattr(self, "_cache_version", None) != version:
            self._cache_version, self._segment_cache = version, {}
        cache: dict[bytes, torch.Tensor] = self._segment_cache
        keys = [row[: int(m.sum())].cpu().numpy().tobytes() for row, m in zip(ids, mask)]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            rows = torch.tensor(todo, device=ids.device)
            n = int(mask[rows].sum(-1).max())
            for i, vec in zip(todo, self.embed(ids[rows, :n], mask[rows, :n])):
                cache[keys[i]] = vec
        return torch.stack([cache[k] for k in keys])

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids_a, mask_a, ids_b, mask_b = self.split_pairs(input_ids, attention_mask)
        width = max(ids_a.shape[1], ids_b.shape[1])
        pad = self.config.pad_token_id or 0
        ids = torch.cat([nn.functional.pad(ids_a, (0, width - ids_a.shape[1]), value=pad),
                         nn.functional.pad(ids_b, (0, width - ids_b.shape[1]), value=pad)])  # fmt: skip
        seg_mask = torch.cat([nn.functional.pad(mask_a, (0, width - mask_a.shape[1])),
                              nn.functional.pad(mask_b, (0, width - mask_b.shape[1]))])  # fmt: skip
        # each distinct segment once: within a problem every trace is in many pairs
        unique, inverse = torch.unique(torch.cat([ids, seg_mask], 1), dim=0, return_inverse=True)
        used = int(seg_mask.sum(-1).max())
        emb = self._embed_unique(unique[:, :used], unique[:, width : width + used])[inverse]
        n_rows = input_ids.shape[0]
        logit = self.classifier(emb[:n_rows], emb[n_rows:])
        logits = torch.stack([torch.zeros_like(logit), logit], dim=-1)
        loss = nn.functional.cross_entropy(logits, labels.long()) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(SiameseBertConfig.model_type, SiameseBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(SiameseBertConfig, SiameseBertForSequenceClassification, exist_ok=True)


def siamese_head(
    name_or_path: str | Path,
    finetune: FinetuneMode = "full",
    dtype: str = "auto",
    pair_scale: float = 20.0,
    pair_bias: float = -14.0,
    segment_max_tokens: int = 128,
    max_length: int | None = None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] = DEFAULT_LORA_TARGETS,
    gradient_checkpointing: bool = False,
    frozen_layers: int = 0,
    pair_prior: bool = False,
) -> ClassifierHead:
    """A siamese (bi-encoder) judge on a BERT encoder folder; see `SiameseBertForSequenceClassification`.

    The encoder weights come from `name_or_path` (a plain BERT/SentenceBERT folder, or a siamese export); the
    pair layer starts at logit = pair_scale * cos + pair_bias. `max_length` (the pair, specials included)
    defaults to 2 * segment_max_tokens + 1, which never cuts a trace below `segment_max_tokens`.

    `frozen_layers` (with ``finetune=full``): partial fine-tuning. The embeddings and the first `frozen_layers`
    encoder layers keep their pretrained weights (no grad: a step back-propagates only through the layers
    above); equal to the encoder's depth, only the pair layer trains. `pair_prior`: the pair layer's prior term
    (`PairCosine`), zero at the start; a siamese export keeps its own setting.
    """
    _check_finetune(finetune)
    if isinstance(frozen_layers, bool) or not isinstance(frozen_layers, int) or frozen_layers < 0:
        raise ValueError(f"model.frozen_layers must be an integer >= 0, got {frozen_layers!r}")
    if finetune not in ("full", "frozen"):
        # an adapter export would name the plain BERT folder as its base, which reloads as another model type
        raise ValueError(f"the siamese judge supports finetune=full or frozen, got {finetune!r}")
    tokenizer = load_tokenizer(name_or_path)
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError(f"{name_or_path}: the siamese judge needs a BERT-style tokenizer with [CLS] and [SEP]")
    base = AutoConfig.from_pretrained(str(name_or_path))
    if isinstance(base, SiameseBertConfig):
        config = base
    elif isinstance(base, BertConfig):
        fields = {k: v for k, v in base.to_dict().items() if k not in ("model_type", "architectures")}
        config = SiameseBertConfig(
            **fields, pair_scale=pair_scale, pair_bias=pair_bias, segment_max_tokens=segment_max_tokens,
            split_token_id=tokenizer.sep_token_id, start_token_id=tokenizer.cls_token_id, pair_prior=pair_prior,
        )  # fmt: skip
    else:
        raise ValueError(f"{name_or_path}: the siamese judge needs a BERT encoder, got model_type {base.model_type}")
    if frozen_layers > config.num_hidden_layers:  # before the weights load
        raise ValueError(
            f"model.frozen_layers={frozen_layers}: {name_or_path} has {config.num_hidden_layers} encoder layers"
        )
    model = SiameseBertForSequenceClassification.from_pretrained(
        str(name_or_path), config=config, dtype=resolve_dtype(dtype)
    )
    model = prepare_for_finetuning(
        model, finetune, "seq_cls", lora_r, lora_alpha, lora_dropout, target_modules, gradient_checkpointing
    )
    if frozen_layers:
        model.bert.embeddings.requires_grad_(False)
        for layer in model.bert.encoder.layer[:frozen_layers]:
            layer.requires_grad_(False)
    max_length = 2 * config.segment_max_tokens + 1 if max_length is None else max_length
    return ClassifierHead(model, tokenizer, str(name_or_path), finetune, max_length)
