"""Training resume (issue 10, item 9): ``ckpt_path=<run>/checkpoints/last.ckpt`` continues from the last finished
epoch, keeps the best score, and ends where the uninterrupted run ends (metrics and weights)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict
from test_train import make_cfg

from deepprune.train import train

EPOCHS = 4
SHRINK = [
    f"trainer.max_epochs={EPOCHS}",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "export=false",
    "optimizer.lr=0.003",
    "module.new_layer_lr=0.05",
]


class Interrupted(Exception):
    """Stands in for a kill: nothing after it runs, what was saved stays."""


class StopAtEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Interrupted(f"stopped at the start of epoch {self.epoch}")


def run(out: Path, *overrides: str, stop_at: int | None = None) -> dict:
    cfg = make_cfg(out, *SHRINK, *overrides)
    with open_dict(cfg):
        cfg.data.traces = {"_target_": "test_train.separable_traces", "_partial_": True}
        if stop_at is not None:
            cfg.callbacks.stop = {"_target_": "test_resume.StopAtEpoch", "epoch": stop_at}
    if stop_at is not None:
        with pytest.raises(Interrupted):
            train(cfg)
        return {}
    train(cfg)
    return json.loads((out / "metrics.json").read_text())


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_from_last_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    full = run(tmp_path / "full")

    run(tmp_path / "cut", stop_at=2)  # killed after epochs 0 and 1
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 6)  # the last finished epoch, best or not

    resumed = run(tmp_path / "resumed", f"ckpt_path={last}")
    assert resumed["global_steps"] == full["global_steps"] == EPOCHS * 3
    for key in ("best_val/auroc_source_mean", "test/auroc", "test/tnr_at_fnr"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    final_full = weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    final_resumed = weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert final_full.keys() == final_resumed.keys()
    for name, tensor in final_full.items():
        torch.testing.assert_close(final_resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
    # the best checkpoint tested is the same epoch's: in the earlier run's dir if that epoch stayed the best
    assert Path(resumed["best_checkpoint"]).name == Path(full["best_checkpoint"]).name
