"""Export round trips: scores before and after export agree for full and LoRA heads, generative and classifier;
the export entry point rebuilds a head from a training run's config and a Lightning-style checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from deepprune.assets import tiny_siamese_dir
from deepprune.export import export
from deepprune.judge.export import JUDGE_FILE, export_head, load_head
from deepprune.judge.heads import classifier_head, generative_head
from deepprune.judge.scorers import HeadScorer, PairScorer, SiameseScorer, load_scorer
from deepprune.judge.siamese import siamese_head
from deepprune.runtime import CONF_DIR

PAIRS = [
    ("Let x = 2. Wait, then $x^{2} = 4$.", "Since x = 3, thus 9"),
    ("First, compute the sum of the roots: 7", "The answer is \\boxed{7}"),
    ("so", "Alternatively, suppose the triangle is right-angled, so the area is 12."),
    ("Thus n = 5", "Thus n = 5"),
]


def _perturb(head, seed: int = 0) -> None:
    """Move every trainable weight off its initial value (LoRA B starts at zero, i.e. a no-op adapter)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def _build(kind: str, finetune: str, qwen_dir: Path, bert_dir: Path):
    torch.manual_seed(0)
    if kind == "generative":
        head = generative_head(qwen_dir, finetune=finetune, lora_r=4, lora_alpha=8, lora_dropout=0.0, dtype="float32")
    else:
        head = classifier_head(
            bert_dir, finetune=finetune, lora_r=4, lora_alpha=8, lora_dropout=0.0, dtype="float32", max_length=128
        )
    _perturb(head)
    return head.eval()


@pytest.mark.parametrize("kind", ["generative", "classifier"])
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_export_round_trip_scores_agree(kind, finetune, tiny_qwen3_dir, tiny_bert_dir, tmp_path):
    head = _build(kind, finetune, tiny_qwen3_dir, tiny_bert_dir)
    before = HeadScorer(head, batch_size=3).score(PAIRS)
    meta = {"truncation": {"kind": "tokens", "k": 128, "tokenizer": "tiny"}}
    out = export_head(head, tmp_path / "judge", meta)
    record = json.loads((out / JUDGE_FILE).read_text())
    assert record["kind"] == kind and record["truncation"] == meta["truncation"]
    assert record["adapter"] is (finetune == "lora")
    if finetune == "lora":
        adapter_cfg = json.loads((out / "adapter_config.json").read_text())
        assert adapter_cfg["base_model_name_or_path"] == record["base_model"]
        assert not (out / "model.safetensors").exists()
    if kind == "generative":
        assert record["label_words"] == {"same": "yes", "different": "no"}
        assert record["label_token_ids"] == {"same": 289, "different": 285}
    scorer = load_scorer(out, batch_size=2)
    assert isinstance(scorer, PairScorer)
    after = scorer.score(PAIRS)
    assert after.shape == (4,) and ((after >= 0) & (after <= 1)).all()
    np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)
    assert not scorer.head.training and not any(p.requires_grad for p in scorer.head.parameters())


@pytest.mark.parametrize("kind", ["generative", "classifier"])
def test_merged_lora_export_matches_adapter(kind, tiny_qwen3_dir, tiny_bert_dir, tmp_path):
    head = _build(kind, "lora", tiny_qwen3_dir, tiny_bert_dir)
    before = HeadScorer(head).score(PAIRS)
    out = export_head(head, tmp_path / "merged", {}, merge_lora=True)
    record = json.loads((out / JUDGE_FILE).read_text())
    assert record["adapter"] is False and record["base_model"] is None
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    np.testing.assert_allclose(load_scorer(out).score(PAIRS), before, atol=1e-5, rtol=0)
    # the head itself still carries its adapter (the merge worked on a copy)
    np.testing.assert_allclose(HeadScorer(head).score(PAIRS), before, atol=0, rtol=0)


def test_scores_do_not_depend_on_batch_size(tiny_qwen3_dir, tiny_bert_dir):
    head = _build("generative", "full", tiny_qwen3_dir, tiny_bert_dir)
    one, many = HeadScorer(head, batch_size=1).score(PAIRS), HeadScorer(head, batch_size=4).score(PAIRS)
    np.testing.assert_allclose(one, many, atol=1e-5, rtol=0)
    # P(same) is softmax over the two label logits, column 1
    with torch.no_grad():
        logits = head(*head.collate(PAIRS[:1]))
    assert one[0] == pytest.approx(torch.softmax(logits, -1)[0, 1].item(), abs=1e-6)
    assert HeadScorer(head).score([]).shape == (0,)


def test_load_rejects_non_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a deepprune judge export"):
        load_head(tmp_path)
    (tmp_path / JUDGE_FILE).write_text(json.dumps({"kind": "regressor"}))
    with pytest.raises(ValueError, match="'kind' must be"):
        load_head(tmp_path)


def test_meta_may_not_contradict_head(tiny_qwen3_dir, tiny_bert_dir, tmp_path):
    head = _build("classifier", "full", tiny_qwen3_dir, tiny_bert_dir)
    with pytest.raises(ValueError, match="contradicts"):
        export_head(head, tmp_path, {"kind": "generative"})


RULE_CONFIGS = {
    # the `truncation` group, as conf/train.yaml composes it today
    "group": "truncation:\n  _target_: deepprune.truncation.WordPrefix\n  k: 5\n  words: [wait, thus]\n",
    # a run from before the group: the rule was data.* keys
    "legacy": "data:\n  truncation: words\n  token_k: 64\n  word_k: 5\n  reasoning_words: [wait, thus]\n",
}


def _fake_training_run(run_dir: Path, model_cfg: str, head, rule_cfg: str = RULE_CONFIGS["group"]) -> Path:
    """A run dir as the training entry point leaves it: .hydra/config.yaml + a Lightning-style checkpoint."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        f"paths:\n  cache_dir: ${{oc.env:DEEPPRUNE_CACHE_DIR}}\nmodel:\n{model_cfg}{rule_cfg}"
    )
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir()
    state = {f"head.{k}": v for k, v in head.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 3}, ckpt)
    return ckpt


MODEL_CONFIGS = {
    # conf/model/tiny.yaml today: the factory, with the folder as a nested deepprune.assets target
    "nested": "  _target_: deepprune.judge.heads.generative_head\n  name_or_path:\n"
    "    _target_: deepprune.assets.tiny_qwen3_dir\n    cache_dir: ${paths.cache_dir}\n  dtype: float32\n",
    # a run from before: the one-line wrapper deepprune.judge.heads.tiny (read through LEGACY_MODEL_TARGETS)
    "wrapper": "  _target_: deepprune.judge.heads.tiny\n  cache_dir: ${paths.cache_dir}\n",
}


@pytest.mark.parametrize(
    ("finetune", "layout", "model"),
    [
        ("full", "group", "nested"),
        ("lora", "group", "nested"),
        ("full", "legacy", "nested"),
        ("lora", "legacy", "wrapper"),
    ],
)
def test_export_entry_point_from_checkpoint(finetune, layout, model, tiny_qwen3_dir, tiny_bert_dir, tmp_path):
    torch.manual_seed(1)
    head = generative_head(
        tiny_qwen3_dir, finetune=finetune, dtype="float32", lora_r=4, lora_alpha=8, lora_dropout=0.0
    ).eval()
    _perturb(head, seed=3)
    before = HeadScorer(head).score(PAIRS)
    model_cfg = MODEL_CONFIGS[model] + f"  finetune: {finetune}\n  lora_r: 4\n  lora_alpha: 8\n  lora_dropout: 0.0\n"
    ckpt = _fake_training_run(tmp_path / "run", model_cfg, head, RULE_CONFIGS[layout])
    out = tmp_path / "exported"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="export", overrides=[f"ckpt_path={ckpt}", f"out_dir={out}"])
    assert export(cfg) == out
    record = json.loads((out / JUDGE_FILE).read_text())
    assert record["truncation"] == {"kind": "words", "k": 5, "words": ["wait", "thus"]}
    assert record["checkpoint"] == str(ckpt.resolve())
    np.testing.assert_allclose(load_scorer(out).score(PAIRS), before, atol=1e-5, rtol=0)


def test_export_entry_point_rejects_wrong_checkpoint(tiny_qwen3_dir, tmp_path):
    from deepprune.judge.export import head_from_checkpoint

    ckpt = tmp_path / "run" / "x.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {"model.weight": torch.zeros(1)}}, ckpt)
    with pytest.raises(FileNotFoundError, match="train_config="):
        head_from_checkpoint(ckpt)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"model:\n  _target_: deepprune.judge.heads.generative_head\n  name_or_path: {tiny_qwen3_dir}\n")
    with pytest.raises(ValueError, match="no 'head"):
        head_from_checkpoint(ckpt, cfg)


@pytest.mark.slow
def test_qlora_head_trains_and_round_trips(tiny_qwen3_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    head = generative_head(tiny_qwen3_dir, finetune="qlora", lora_r=4, lora_dropout=0.0, dtype="float32")
    assert any(p.dtype == torch.uint8 for p in head.parameters())  # 4-bit packed base weights
    head.train()
    ids, mask = head.collate(PAIRS[:2])  # bitsandbytes' CPU backward wants batches of 2 or more
    torch.nn.functional.cross_entropy(head(ids, mask), torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    _perturb(head)
    before = HeadScorer(head.eval()).score(PAIRS)
    out = export_head(head, tmp_path / "qlora", {})
    assert json.loads((out / JUDGE_FILE).read_text())["adapter"] is True
    with pytest.raises(ValueError, match="cannot be merged"):
        export_head(head, tmp_path / "merged", {}, merge_lora=True)
    np.testing.assert_allclose(load_scorer(out).score(PAIRS), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("finetune", "prior"), [("full", False), ("frozen", False), ("full", True)])
def test_siamese_export_round_trip(finetune, prior, deepprune_cache_dir, tmp_path):
    """The siamese judge exports as a classifier folder whose config names its registered model type (and keeps
    the pair layer's prior term)."""
    torch.manual_seed(0)
    folder = tiny_siamese_dir(deepprune_cache_dir)
    head = siamese_head(folder, finetune=finetune, dtype="float32", segment_max_tokens=24, pair_prior=prior)
    head.requires_grad_(True)
    _perturb(head)
    head.eval()
    before = HeadScorer(head, batch_size=3).score(PAIRS)
    assert before[3] > 0.99  # identical traces: cosine 1, logit = sum(w) + b, far above 0 after any small move
    out = export_head(head, tmp_path / "siamese", {"truncation": {"kind": "tokens", "k": 24}})
    record = json.loads((out / JUDGE_FILE).read_text())
    assert record["kind"] == "classifier" and record["adapter"] is False and record["finetune"] == finetune
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "deepprune_siamese_bert" and config["segment_max_tokens"] == 24
    assert config["pair_prior"] is prior
    scorer = load_scorer(out, batch_size=2)
    assert isinstance(scorer, SiameseScorer) and scorer.order_invariant
    after = scorer.score(PAIRS)
    np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)


def test_siamese_scorer_equals_the_pair_forward_on_long_texts(deepprune_cache_dir):
    """Embedding each text alone (cut to segment_max_tokens) gives the pair forward's scores, in both orders,
    for texts longer than a segment; each distinct text is encoded once."""
    torch.manual_seed(1)
    folder = tiny_siamese_dir(deepprune_cache_dir)
    head = siamese_head(folder, dtype="float32", segment_max_tokens=12)
    head.requires_grad_(True)
    _perturb(head, seed=3)
    head.eval()
    long_a = "Let the roots be r and s. Wait, then r + s = 7 and rs = 12, so r = 3 and s = 4 " * 3
    long_b = "Alternatively, factor x^2 - 7x + 12 = (x - 3)(x - 4); hence the larger root is 4. " * 3
    pairs = [(long_a, long_b), (long_b, long_a), (long_a, "short"), ("short", long_a + " and more")] + PAIRS
    reference = HeadScorer(head, batch_size=3).score(pairs)
    scorer = SiameseScorer(head, batch_size=2)
    np.testing.assert_allclose(scorer.score(pairs), reference, atol=1e-5, rtol=0)
    assert reference[0] == pytest.approx(reference[1], abs=1e-6)
    # the two long texts differ only after the 10 content tokens a segment keeps: the same embedding
    assert reference[2] == pytest.approx(reference[3], abs=1e-6)
    distinct = {t for pair in pairs for t in pair}
    assert set(scorer._cache) == distinct
    with pytest.raises(ValueError, match="segment_max_tokens"):
        SiameseScorer(siamese_head(folder, dtype="float32", segment_max_tokens=12, max_length=20))
    with pytest.raises(TypeError, match="siamese head"):
        SiameseScorer(classifier_head(folder, finetune="full"))


def test_legacy_model_targets_read_as_todays_configs():
    """Every removed one-line factory maps to the factory it wrapped, with the folder nested and its old defaults;
    the user's keys win over those defaults, and today's configs pass through unchanged."""
    from deepprune.judge.export import LEGACY_MODEL_TARGETS, upgrade_model_config

    assert upgrade_model_config({"_target_": "deepprune.judge.heads.tiny", "cache_dir": "${paths.cache_dir}",
                                 "seed": 2, "finetune": "lora", "lora_r": 4}) == {
        "_target_": "deepprune.judge.heads.generative_head",
        "name_or_path": {"_target_": "deepprune.assets.tiny_qwen3_dir", "cache_dir": "${paths.cache_dir}", "seed": 2},
        "finetune": "lora", "dtype": "float32", "lora_r": 4,
    }  # fmt: skip
    assert upgrade_model_config({"_target_": "deepprune.judge.heads.minilm_cross", "finetune": "lora"}) == {
        "_target_": "deepprune.judge.heads.classifier_head",
        "name_or_path": {"_target_": "deepprune.assets.minilm_dir"},
        "max_length": 256, "finetune": "lora",
    }  # fmt: skip
    today = {"_target_": "deepprune.judge.siamese.siamese_head", "name_or_path": "/some/folder"}
    assert upgrade_model_config(today) == today
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for old, (target, folder, moved, _) in LEGACY_MODEL_TARGETS.items():
            name = old.rpartition(".")[2]
            cfg = compose(config_name="train", overrides=[f"model={name}"])
            # the YAML that replaced the wrapper names the same factory and folder, and nests the same keys
            assert (cfg.model._target_, cfg.model.name_or_path._target_) == (target, folder), name
            assert set(cfg.model.name_or_path) - {"_target_"} == set(moved), name
