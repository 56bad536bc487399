"""Weight-space blend of a fine-tuned judge with its untrained start, the blend weight chosen on validation.

Fine-tuning an encoder on a few models' traces moves it away from what it knew, and on other models' traces
the tuned judge can rank pairs worse than the untrained SentenceBERT cosine it started from. The blend keeps
both: every trainable parameter becomes ``start + alpha * (tuned - start)`` (weight-space ensembling, WiSE-FT,
Wortsman et al. 2022), and ``alpha`` is the value of a grid with the best validation AUROC, ties going to the
smaller ``alpha`` (closer to the start). ``alpha = 0`` is the untrained start bit for bit, which for the siamese
judge ranks pairs exactly as the reference does, so with 0 in the grid the chosen judge is never below its
start on the validation pairs; with an out-of-distribution validation source (`data.sources`, role heldout)
that is the source the judge does not train on. One encoder serves at inference, unlike an output-space blend.

Only parameters that require grad are snapshotted (the ones training moves): a LoRA judge stores its adapters,
not the base model. ``python -m deepprune.train blend.alphas=[0,0.5,1]``; ``blend=null`` exports the best
checkpoint as it is. The choice (every alpha's validation AUROC, the chosen one) goes into metrics.json and the
export record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepprune.runtime import get_logger

__all__ = ["BlendChoice", "WeightBlend", "apply_blend", "trainable_snapshot"]

log = get_logger(__name__)


def trainable_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters that require grad, by name."""
    return {name: p.detach().to("cpu", copy=True) for name, p in module.named_parameters() if p.requires_grad}


@torch.no_grad()
def apply_blend(
    module: nn.Module, start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float
) -> None:
    """Set each snapshotted parameter of ``module`` to ``start + alpha * (tuned - start)`` in place.

    ``alpha = 0`` copies ``start`` exactly and ``alpha = 1`` copies ``tuned`` exactly (no rounding through the
    formula at the ends).
    """
    if set(start) != set(tuned):
        differ = sorted(set(start) ^ set(tuned))
        raise ValueError(f"blend: start and tuned snapshots name different parameters: {differ[:5]}")
    params = dict(module.named_parameters())
    missing = sorted(set(start) - set(params))
    if missing:
        raise ValueError(f"blend: the module has no parameter(s) {missing[:5]}")
    for name, s in start.items():
        p = params[name]
        if alpha == 0:
            value = s
        elif alpha == 1:
            value = tuned[name]
        else:
            value = s.float() + alpha * (tuned[name].float() - s.float())
        p.copy_(value.to(device=p.device, dtype=p.dtype))


@dataclass
class BlendChoice:
    """The grid, each alpha's validation AUROC and the chosen alpha (what metrics.json and the export record)."""

    alphas: list[float]
    val_auroc: list[float]
    alpha: float
    metric: str = "val/auroc"
    extra: dict[str, Any] = field(default_factory=dict)
    # each alpha's per-source validation AUROC (val/auroc/<source>), when the run has sources
    per_source: list[dict[str, float]] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        grid = [{"alpha": a, "val_auroc": v} for a, v in zip(self.alphas, self.val_auroc)]
        for row, sources in zip(grid, self.per_source):
            if sources:
                row["val_auroc_per_source"] = sources
        return {"method": "weight_space", "metric": self.metric, "alpha": self.alpha, "grid": grid, **self.extra}


def choose_alpha(alphas: Sequence[float], values: Sequence[float]) -> float:
    """The alpha with the highest value; ties (and NaN values, which never win) go to the smallest alpha."""
    best_alpha, best_value = None, float("-inf")
    for a, v in sorted(zip(alphas, values)):
        if v == v and v > best_value:  # v == v: not NaN
            best_alpha, best_value = a, v
    if best_alpha is None:
        raise ValueError(f"blend: no alpha gave a validation value (all NaN): {list(zip(alphas, values))}")
    return float(best_alpha)


class WeightBlend:
    """Snapshot the trainable parameters before training; after it, choose and apply the blend.

    Args:
        alphas: the grid of blend weights in [0, 1] (0: the untrained start, 1: the tuned weights).
        metric: the validation metric to maximize (logged by `deepprune.judge.module.JudgeModule`).
    """

    def __init__(self, alphas: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), metric: str = "val/auroc") -> None:
        from deepprune.validation import check_probability

        if not alphas:
            raise ValueError("blend.alphas must name at least one blend weight")
        for i, a in enumerate(alphas):
            check_probability(f"blend.alphas[{i}]", a)
        self.alphas = sorted(float(a) for a in alphas)
        self.metric = metric
        self.start: dict[str, torch.Tensor] | None = None

    def snapshot(self, head: nn.Module) -> None:
        """Remember the untrained start (call before `trainer.fit`)."""
        self.start = trainable_snapshot(head)

    def choose(self, trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None) -> BlendChoice:
        """Load the tuned weights (``ckpt_path``, else the module's), score each alpha on the validation pairs,
        and leave the module holding the chosen blend."""
        if self.start is None:
            raise RuntimeError("WeightBlend.choose before snapshot(): the untrained start was not recorded")
        if ckpt_path:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        tuned = trainable_snapshot(module.head)
        start = {k: v for k, v in self.start.items() if k in tuned}
        values, per_source = [], []
        for alpha in self.alphas:
            apply_blend(module.head, start, tuned, alpha)
            trainer.validate(module, datamodule=datamodule, verbose=False)
            metrics = trainer.callback_metrics
            value = metrics.get(self.metric)
            values.append(float(value) if value is not None else float("nan"))
            prefix = "val/auroc/"
            per_source.append({k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix)})
            log.info("blend alpha %.2f: %s %.4f", alpha, self.metric, values[-1])
        alpha = choose_alpha(self.alphas, values)
        apply_blend(module.head, start, tuned, alpha)
        return BlendChoice(self.alphas, values, alpha, self.metric, per_source=per_source)
