"""Checkpointing that resumes: ``ckpt_path=<run>/checkpoints/last.ckpt`` continues as if never interrupted.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only in an epoch that also saved a top-k
checkpoint, so with ``save_top_k: 1`` it is the last *best* epoch, and a run cut later resumes from there. And a
resumed run writes into a new run directory, where ``ModelCheckpoint`` drops the best score it had (it keeps
state only when the directory is unchanged), so the first epoch after resuming always counts as a new best.
``conf/callbacks/default.yaml`` therefore combines three callbacks:

- :class:`ResumableCheckpoint` for the best epoch: it takes the best score, path and top-k list over from the
  checkpoint even when the directory changed. Lightning deletes only files in its own directory, so the earlier
  run's best checkpoint stays where it is and is used for testing if it stays the best;
- a second :class:`ResumableCheckpoint` with ``monitor: null`` named ``last``: ``last.ckpt`` after every epoch;
- :class:`EpochSeed`: the random state at the start of epoch ``e >= 1`` depends on ``(seed, e)`` only, so the
  shuffles and dropout of a resumed epoch are those of the uninterrupted run (Lightning's checkpoints hold no
  random state). Epoch 0 keeps the stream of ``seed_everything``, so one-epoch runs are unchanged.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from deepprune.runtime import get_logger

log = get_logger(__name__)

__all__ = ["EpochSeed", "ResumableCheckpoint", "epoch_seed"]


class ResumableCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that keeps its best score, best path and top-k list when a run resumes elsewhere."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        previous_dir = state_dict.get("dirpath")
        if self.dirpath is not None and previous_dir not in (None, self.dirpath):
            state_dict = {**state_dict, "dirpath": self.dirpath}  # ModelCheckpoint reloads only for the same dir
            if self.monitor is not None and state_dict.get("best_model_score") is not None:
                log.info(
                    "resumed checkpointing: best %s=%.6g so far, in %s",
                    self.monitor, float(state_dict["best_model_score"]), state_dict.get("best_model_path"),
                )  # fmt: skip
        super().load_state_dict(state_dict)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random state (a 32-bit value, as numpy requires)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919) % 2**32


class EpochSeed(L.Callback):
    """Reseed Python, numpy and torch at the start of every epoch after the first from ``(seed, epoch)``.

    A resumed run reseeds when the checkpoint is restored, before Lightning draws the first resumed epoch's
    shuffle (it creates that epoch's data iterator before ``on_train_epoch_start``; later epochs after it).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._next_epoch = 0
        self._seeded_epoch: int | None = None

    def _reseed(self, epoch: int) -> None:
        value = epoch_seed(self.seed, epoch)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # all devices
        self._seeded_epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch > 0 and epoch != self._seeded_epoch:
            self._reseed(epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_epoch = trainer.current_epoch + 1  # checkpoints of this epoch are written after this hook

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "next_epoch": self._next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        epoch = int(state_dict.get("next_epoch", 0))
        if epoch > 0:
            self._reseed(epoch)
