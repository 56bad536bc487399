"""The weight-space blend (deepprune.judge.blend): the ends of the blend are the start and the tuned weights bit
for bit, a siamese judge at weight 0 scores as the cosine reference literally, ties choose the smaller weight, and
`train blend=weight_space` records and exports the choice that scored best on validation.
"""

import json
import math

import numpy as np
import pytest
import torch
from test_train import make_cfg
from torch import nn

from deepprune.judge.blend import WeightBlend, apply_blend, choose_alpha, trainable_snapshot
from deepprune.train import train


def _perturb(module: nn.Module, seed: int = 0) -> None:
    """Stand-in for fine-tuning: move every trainable weight by seeded noise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_ends_of_the_blend_are_exact_and_the_middle_is_the_mean():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    net[2].weight.requires_grad_(False)  # frozen: never snapshotted, never touched
    frozen = net[2].weight.detach().clone()
    start = trainable_snapshot(net)
    assert set(start) == {"0.weight", "0.bias", "2.bias"}
    _perturb(net)
    tuned = trainable_snapshot(net)
    apply_blend(net, start, tuned, 0.0)
    assert all(torch.equal(p, start[n]) for n, p in net.named_parameters() if n in start)
    apply_blend(net, start, tuned, 1.0)
    assert all(torch.equal(p, tuned[n]) for n, p in net.named_parameters() if n in tuned)
    apply_blend(net, start, tuned, 0.5)
    assert torch.allclose(net[0].weight, (start["0.weight"] + tuned["0.weight"]) / 2)
    assert torch.equal(net[2].weight, frozen)


def test_snapshots_must_name_the_same_parameters():
    net = nn.Linear(2, 1)
    start = trainable_snapshot(net)
    with pytest.raises(ValueError, match="different parameters"):
        apply_blend(net, start, {"weight": start["weight"]}, 0.5)


def test_choose_alpha_prefers_the_best_then_the_smaller_and_never_nan():
    assert choose_alpha([0.0, 0.5, 1.0], [0.60, 0.70, 0.65]) == 0.5
    assert choose_alpha([1.0, 0.0, 0.5], [0.70, 0.70, 0.70]) == 0.0  # a tie keeps the weights closest to the start
    assert choose_alpha([0.0, 1.0], [math.nan, 0.55]) == 1.0
    with pytest.raises(ValueError, match="all NaN"):
        choose_alpha([0.0], [math.nan])


@pytest.mark.parametrize("alphas", [[], [0.0, 1.5]])
def test_bad_grid_names_the_key(alphas):
    with pytest.raises(ValueError, match=r"blend\.alphas"):
        WeightBlend(alphas)


def test_siamese_blend_at_zero_is_the_cosine_reference_literally(deepprune_cache_dir):
    """After "tuning", alpha = 0 gives back the untrained siamese judge, whose P(same) is
    sigmoid(20 cos + -14) of the SentenceBERT-style cosine the reference scorer computes on the same folder."""
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.scorers import EmbeddingScorer, SiameseScorer
    from deepprune.judge.siamese import siamese_head

    folder = tiny_siamese_dir(deepprune_cache_dir)
    head = siamese_head(folder, dtype="float32", segment_max_tokens=32)
    start = trainable_snapshot(head)
    _perturb(head, seed=3)
    tuned = trainable_snapshot(head)
    texts = ["we count the cases and get four", "so the sum is twelve", "the area is pi over two", "it is 7"]
    pairs = [(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :]]
    reference = EmbeddingScorer(model_dir=folder, max_tokens=32)
    cos = 2 * reference.score(pairs) - 1
    expected = 1 / (1 + np.exp(-(20.0 * cos - 14.0)))

    tuned_scores = SiameseScorer(head).score(pairs)
    assert not np.allclose(tuned_scores, expected, atol=1e-4)  # the perturbation did move the judge
    apply_blend(head, start, tuned, 0.0)
    np.testing.assert_allclose(SiameseScorer(head).score(pairs), expected, rtol=1e-5, atol=1e-6)


def test_train_with_blend_records_and_exports_the_best_validation_choice(tmp_path):
    cfg = make_cfg(
        tmp_path, "model=tiny_siamese", "data.group_batch_traces=3", "data.group_batches_per_epoch=6",
        "truncation.k=24", "blend=weight_space", "blend.alphas=[0.0,0.5,1.0]", "optimizer.lr=1e-3",
    )  # fmt: skip
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    blend = metrics["blend"]
    grid = {row["alpha"]: row["val_auroc"] for row in blend["grid"]}
    assert sorted(grid) == [0.0, 0.5, 1.0] and blend["metric"] == "val/auroc_source_mean"
    assert blend["alpha"] == choose_alpha(list(grid), list(grid.values()))
    # alpha = 1 is the best checkpoint: its validation AUROC is the one checkpointing kept; the run reports the
    # exported blend's (what sweepers optimize)
    assert grid[1.0] == pytest.approx(blend["best_tuned_val/auroc_source_mean"], abs=1e-6)
    assert metrics["best_val/auroc_source_mean"] == pytest.approx(max(grid.values()))
    # the tuned judge's own test metrics are kept beside the blend's; the blend's are the run's
    assert set(blend["tuned_test"]) >= {"test/auroc", "test/tnr_at_fnr"}
    if blend["alpha"] == 1.0:
        assert blend["tuned_test"]["test/auroc"] == pytest.approx(metrics["test/auroc"])
    record = json.loads((tmp_path / "export" / "deepprune_judge.json").read_text())
    assert record["blend"] == blend
