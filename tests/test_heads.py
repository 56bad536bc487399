"""Judge heads: encoding, forward shapes, literal label-token ids, padding invariance, fine-tuning modes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from deepprune.judge.backbone import resolve_dtype
from deepprune.judge.heads import GenerativeHead, generative_head, label_token_ids, pad_batch
from deepprune.judge.prompt import JudgePrompt

PAIRS = [
    ("Let x = 2. Wait, then $x^{2} = 4$.", "Since x = 3, thus 9"),
    ("First, compute the sum of the roots: 7", "The answer is \\boxed{7}"),
    ("so", "Alternatively, suppose the triangle is right-angled, so the area is 12 and the perimeter is 24."),
]


def test_pad_batch_literal():
    ids, mask = pad_batch([[7, 8], [9], [1, 2, 3]], pad_token_id=0)
    assert ids.tolist() == [[7, 8, 0], [9, 0, 0], [1, 2, 3]]
    assert mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert ids.dtype == mask.dtype == torch.long


def test_prompt_render_keeps_braces_and_ends_at_answer(tiny_tokenizer):
    prompt = JudgePrompt()
    text = prompt.render(tiny_tokenizer, "a {b} \\frac{1}{2}", "{a}")
    assert "a {b} \\frac{1}{2}" in text and "### Solution B (unfinished)\n{a}\n" in text
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "Reply with one word: yes if they will, no if they will not." in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"label_words": ("yes", "yes")}, "two different"),
        ({"label_words": ("yes",)}, "two different"),
        ({"user_template": "only {a}"}, r"no \{b\}"),
        ({"user_template": "{a} {b} {c}"}, "may only use"),
    ],
)
def test_prompt_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JudgePrompt(**kwargs)


def test_label_token_ids_literal(tiny_tokenizer, tiny_generative_head):
    assert label_token_ids(tiny_tokenizer, ("yes", "no")) == (289, 285)
    assert tiny_generative_head.label_token_ids == (285, 289)  # column order: (different, same)
    assert tiny_generative_head.pad_token_id == 0
    with pytest.raises(ValueError, match="single tokens"):
        label_token_ids(tiny_tokenizer, ("certainly", "no"))


def test_generative_encode_and_forward(tiny_generative_head):
    head = tiny_generative_head.eval()
    ids = head.encode(*PAIRS[0])
    text = head.tokenizer.decode(ids)
    assert PAIRS[0][0] in text and PAIRS[0][1] in text
    tail = head.tokenizer.encode("<|im_start|>assistant\n")
    assert tail[0] == 1 and ids[-len(tail) :] == tail
    batch_ids, mask = head.collate(PAIRS)
    with torch.no_grad():
        logits = head(batch_ids, mask)
    assert logits.shape == (3, 2) and logits.dtype == torch.float32
    # independent computation: full-vocabulary LM logits at each row's last real token, one row at a time
    with torch.no_grad():
        for i, (a, b) in enumerate(PAIRS):
            single = torch.tensor([head.encode(a, b)])
            full = head.backbone(input_ids=single).logits[0, -1]
            torch.testing.assert_close(logits[i], full[list(head.label_token_ids)], atol=1e-5, rtol=1e-5)


def test_generative_left_padding_matches_right(tiny_generative_head):
    head = tiny_generative_head.eval()
    seqs = [head.encode(a, b) for a, b in PAIRS]
    width = max(map(len, seqs))
    left = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    left_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    with torch.no_grad():
        right = head(*pad_batch(seqs, 0))
        torch.testing.assert_close(head(left, left_mask), right, atol=1e-5, rtol=1e-5)


def test_generative_max_length_truncates_both_traces(tiny_qwen3_dir):
    head = generative_head(tiny_qwen3_dir, finetune="frozen", dtype="float32", max_length=400)
    ids = head.encode("Wait, so the sum is 12. " * 40, "Thus the product is 35. " * 40)
    assert len(ids) <= 400
    text = head.tokenizer.decode(ids)
    assert "sum is 12" in text and "product is 35" in text and text.endswith("<|im_start|>assistant\n")
    assert not any(p.requires_grad for p in head.parameters())


def test_custom_label_words(tiny_qwen3_dir, tiny_tokenizer):
    prompt = JudgePrompt(label_words=("A", "B"))
    head = generative_head(tiny_qwen3_dir, prompt=prompt, finetune="full", dtype="float32")
    same, diff = tiny_tokenizer.encode("A"), tiny_tokenizer.encode("B")
    assert head.label_token_ids == (diff[0], same[0])


def test_lora_trains_only_adapters(tiny_lora_head):
    head = tiny_lora_head.train()
    trainable = [n for n, p in head.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ids, mask = head.collate(PAIRS)
    loss = torch.nn.functional.cross_entropy(head(ids, mask), torch.tensor([1, 0, 1]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters() if p.requires_grad)


def test_gradient_checkpointing_backward(tiny_qwen3_dir):
    head = generative_head(tiny_qwen3_dir, finetune="lora", lora_r=4, dtype="float32", gradient_checkpointing=True)
    head.train()
    ids, mask = head.collate(PAIRS[:2])
    head(ids, mask).sum().backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_classifier_encode_forward_and_padding(tiny_classifier_head):
    head = tiny_classifier_head.eval()
    tok = head.tokenizer
    ids = head.encode("x = 2", "x = 3")
    assert ids == tok.encode("x = 2") + tok.encode("\n\n") + tok.encode("x = 3") + [tok.eos_token_id]
    long_ids = head.encode("Wait, " * 400, "so")
    assert len(long_ids) == 256 and long_ids[-1] == tok.eos_token_id
    assert long_ids[-1 - len(tok.encode("so")) :] == tok.encode("so") + [tok.eos_token_id]
    batch, mask = head.collate(PAIRS)
    with torch.no_grad():
        logits = head(batch, mask)
        assert logits.shape == (3, 2)
        for i, (a, b) in enumerate(PAIRS):
            single = torch.tensor([head.encode(a, b)])
            torch.testing.assert_close(logits[i], head(single, torch.ones_like(single))[0], atol=1e-5, rtol=1e-5)


def test_minilm_classifier_uses_native_pairs():
    from deepprune.assets import minilm_dir
    from deepprune.judge.heads import classifier_head

    head = classifier_head(minilm_dir(), finetune="lora", lora_r=4, dtype="float32", max_length=256)
    ids = head.encode("the answer is 4", "it is 5")
    tok = head.tokenizer
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2
    assert len(head.encode("word " * 400, "other " * 400)) == 256
    trainable = [n for n, p in head.named_parameters() if p.requires_grad]
    assert any("classifier.modules_to_save" in n for n in trainable)  # the new layer trains and is exported
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    with torch.no_grad():
        assert head(*head.collate(PAIRS)).shape == (3, 2)


def test_resolve_dtype():
    assert resolve_dtype("float32") is torch.float32 and resolve_dtype("bf16") is torch.bfloat16
    expected = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    assert resolve_dtype("auto") is expected
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8")


def test_bad_finetune_mode(tiny_qwen3_dir):
    with pytest.raises(ValueError, match="finetune must be one of"):
        generative_head(tiny_qwen3_dir, finetune="adapter")


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes installed")
def test_qlora_without_bitsandbytes_is_a_clear_error(tiny_qwen3_dir):
    with pytest.raises(ImportError, match="bitsandbytes"):
        generative_head(tiny_qwen3_dir, finetune="qlora")


def test_head_is_a_generative_head(tiny_generative_head):
    assert isinstance(tiny_generative_head, GenerativeHead) and tiny_generative_head.kind == "generative"


def test_generative_max_length_too_small(tiny_qwen3_dir):
    with pytest.raises(ValueError, match="leaves no room"):
        generative_head(tiny_qwen3_dir, finetune="frozen", dtype="float32", max_length=50)


# -- siamese (bi-encoder) judge ------------------------------------------------------------------------------------


@pytest.fixture()
def tiny_siamese(deepprune_cache_dir):
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.siamese import siamese_head

    torch.manual_seed(0)
    return siamese_head(tiny_siamese_dir(deepprune_cache_dir), dtype="float32", segment_max_tokens=16).eval()


def test_minilm_siamese_starts_as_the_cosine_reference():
    """Untrained, the default judge's logit is exactly 20 * SentenceBERT cosine - 14 (so the same ranking)."""
    import numpy as np

    from deepprune.assets import minilm_dir
    from deepprune.judge.scorers import EmbeddingScorer
    from deepprune.judge.siamese import siamese_head

    head = siamese_head(minilm_dir(), dtype="float32").eval()
    assert head.kind == "classifier" and head.backbone.config.model_type == "deepprune_siamese_bert"
    with torch.no_grad():
        logits = head(*head.collate(PAIRS))
    ref = EmbeddingScorer(max_tokens=128).score(PAIRS) * 2 - 1  # back from (cos + 1) / 2 to cos
    assert torch.equal(logits[:, 0], torch.zeros(3))
    np.testing.assert_allclose(logits[:, 1].numpy(), 20 * ref - 14, atol=1e-4)


def test_siamese_splits_pairs_into_framed_segments(tiny_siamese):
    head, tok = tiny_siamese, tiny_siamese.tokenizer
    ids = torch.tensor([head.encode("x = 2", "so y")])
    ids_a, mask_a, ids_b, mask_b = head.backbone.split_pairs(ids, torch.ones_like(ids))
    assert ids_a[0].tolist() == tok("x = 2")["input_ids"] and mask_a.sum() == len(tok("x = 2")["input_ids"])
    assert ids_b[0].tolist() == tok("so y")["input_ids"]
    # each segment is cut to segment_max_tokens (16), still framed by [CLS] ... [SEP]
    long = torch.tensor([head.encode("word " * 40, "b")])
    ids_a, mask_a, _, _ = head.backbone.split_pairs(long, torch.ones_like(long))
    assert int(mask_a.sum()) == 16 and ids_a[0, 0] == tok.cls_token_id and ids_a[0, 15] == tok.sep_token_id
    with pytest.raises(ValueError, match="separator"):
        head(torch.tensor([[tok.cls_token_id, 2000, 2001]]), torch.ones(1, 3, dtype=torch.long))


def test_siamese_batch_padding_order_and_duplicates(tiny_siamese):
    head = tiny_siamese
    torch.nn.init.normal_(head.backbone.classifier.weight, 5.0, 2.0)  # a non-uniform pair layer
    pairs = [*PAIRS, PAIRS[0], (PAIRS[1][1], PAIRS[1][0])]
    seqs = [head.encode(a, b) for a, b in pairs]
    width = max(map(len, seqs))
    left = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    left_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    with torch.no_grad():
        right = head(*pad_batch(seqs, head.pad_token_id))
        torch.testing.assert_close(head(left, left_mask), right, atol=1e-5, rtol=1e-5)
        for i, s in enumerate(seqs):  # one row at a time, no padding, no shared segments
            single = torch.tensor([s])
            torch.testing.assert_close(head(single, torch.ones_like(single))[0], right[i], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(right[3], right[0])  # duplicate pair
    torch.testing.assert_close(right[4], right[1], atol=1e-5, rtol=1e-5)  # the logit is symmetric in (a, b)


def test_siamese_eval_remembers_segments_until_a_weight_changes(tiny_siamese, monkeypatch):
    """Without grad, a segment seen in an earlier batch is not encoded again; any in-place weight change (an
    optimizer step, load_state_dict, a blend) forgets them, so scores always follow the current weights."""
    head, model = tiny_siamese, tiny_siamese.backbone
    calls = []
    embed = model.embed
    monkeypatch.setattr(model, "embed", lambda ids, mask: calls.append(len(ids)) or embed(ids, mask))
    with torch.no_grad():
        first = head(*head.collate(PAIRS))
        again = head(*head.collate([PAIRS[1], PAIRS[0]]))  # every segment already seen
        assert sum(calls[1:]) == 0 and len(calls) == 1
        torch.testing.assert_close(again[0], first[1])
        model.bert.embeddings.word_embeddings.weight.mul_(1.5)
        moved = head(*head.collate(PAIRS))
    assert len(calls) == 2 and not torch.allclose(moved, first)  # re-encoded with the new weights
    head.train()
    out = head(*head.collate(PAIRS))  # training (with grad) always encodes
    assert len(calls) == 3 and out.requires_grad


def test_embedding_scorer_cache_is_bounded(deepprune_cache_dir):
    """A server scores new prefixes for ever: the reference's embedding cache stays under cache_size, and the scores
    do not depend on what it still remembers."""
    import numpy as np

    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.scorers import EmbeddingScorer

    scorer = EmbeddingScorer(model_dir=tiny_siamese_dir(deepprune_cache_dir), max_tokens=16, cache_size=4)
    first = scorer.score(PAIRS)
    for i in range(5):
        scorer.score([(f"text {i}", f"other {i}")])
        assert len(scorer._cache) <= 4
    np.testing.assert_allclose(scorer.score(PAIRS), first, rtol=1e-6)


def test_siamese_trains_every_weight(tiny_siamese):
    head = tiny_siamese.train()
    ids, mask = head.collate(PAIRS)
    torch.nn.functional.cross_entropy(head(ids, mask), torch.tensor([1, 0, 1])).backward()
    grads = {n: p.grad for n, p in head.named_parameters() if p.requires_grad}
    assert grads["backbone.classifier.weight"] is not None and grads["backbone.classifier.bias"] is not None
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())


def test_siamese_rejects_non_bert_folders(tiny_qwen3_dir):
    from deepprune.judge.siamese import siamese_head

    with pytest.raises(ValueError, match=r"\[CLS\] and \[SEP\]|BERT"):
        siamese_head(tiny_qwen3_dir)


def test_siamese_partial_finetuning_keeps_frozen_layers(deepprune_cache_dir):
    """frozen_layers=k: the embeddings and encoder layers 0..k-1 get no grad and do not move in a step; the layers
    above and the pair layer do. At the encoder's depth only the pair layer trains."""
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.siamese import siamese_head

    folder = tiny_siamese_dir(deepprune_cache_dir)
    torch.manual_seed(0)
    head = siamese_head(folder, dtype="float32", segment_max_tokens=16, frozen_layers=1).train()
    depth = head.backbone.config.num_hidden_layers
    assert depth >= 2
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert not any(".embeddings." in n or ".encoder.layer.0." in n for n in trainable)
    assert any(".encoder.layer.1." in n for n in trainable)
    assert {"backbone.classifier.weight", "backbone.classifier.bias"} <= trainable
    before = {n: p.detach().clone() for n, p in head.named_parameters()}
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=0.5)
    ids, mask = head.collate(PAIRS)
    torch.nn.functional.cross_entropy(head(ids, mask), torch.tensor([1, 0, 1])).backward()
    optimizer.step()
    for name, p in head.named_parameters():
        assert torch.equal(p, before[name]) == (name not in trainable), name

    only_pair = siamese_head(folder, dtype="float32", segment_max_tokens=16, frozen_layers=depth)
    assert {n for n, p in only_pair.named_parameters() if p.requires_grad} == {
        "backbone.classifier.weight",
        "backbone.classifier.bias",
    }


@pytest.mark.parametrize("bad", [-1, 1.5, True, 99])
def test_siamese_frozen_layers_out_of_range(deepprune_cache_dir, bad):
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.siamese import siamese_head

    with pytest.raises(ValueError, match=r"model\.frozen_layers"):
        siamese_head(tiny_siamese_dir(deepprune_cache_dir), dtype="float32", frozen_layers=bad)


def test_siamese_pair_prior_starts_at_zero_and_stays_symmetric(deepprune_cache_dir):
    """pair_prior adds c . (u + v) / 2 with c = 0: untrained, the logits equal the plain judge's exactly; moved,
    the logit is still symmetric in the pair and shifts by exactly c . (u + v) / 2."""
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.siamese import siamese_head

    folder = tiny_siamese_dir(deepprune_cache_dir)
    torch.manual_seed(0)
    plain = siamese_head(folder, dtype="float32", segment_max_tokens=16).eval()
    torch.manual_seed(0)
    prior = siamese_head(folder, dtype="float32", segment_max_tokens=16, pair_prior=True).eval()
    layer = prior.backbone.classifier
    assert plain.backbone.classifier.prior is None and torch.equal(layer.prior, torch.zeros_like(layer.prior))
    ids, mask = prior.collate(PAIRS)
    with torch.no_grad():
        assert torch.equal(prior(ids, mask), plain(ids, mask))
        layer.prior.copy_(torch.linspace(-3.0, 3.0, layer.prior.numel()))
        moved = prior(ids, mask)[:, 1]
        swapped = prior(*prior.collate([(b, a) for a, b in PAIRS]))[:, 1]
        torch.testing.assert_close(moved, swapped, atol=1e-5, rtol=1e-5)
        u = prior.backbone.embed(*prior.backbone.split_pairs(ids, mask)[:2])
        v = prior.backbone.embed(*prior.backbone.split_pairs(ids, mask)[2:])
        expected = plain(ids, mask)[:, 1] + ((u + v) / 2 * layer.prior).sum(-1)
        torch.testing.assert_close(moved, expected, atol=1e-4, rtol=1e-5)
    prior.train()
    torch.nn.functional.cross_entropy(prior(ids, mask), torch.tensor([1, 0, 1])).backward()
    assert layer.prior.grad is not None and layer.prior.grad.abs().sum() > 0
