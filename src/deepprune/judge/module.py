"""The LightningModule that trains a judge head on trace pairs and scores it.

`JudgeModule` holds the head as ``self.head`` (checkpoint keys ``head.*``), a loss (`deepprune.judge.losses`),
an optimizer factory and an optional scheduler factory (Hydra ``_partial_``s). Validation tracks AUROC
(`VAL_AUROC`) and the mean of the per-source AUROCs (`VAL_AUROC_SOURCE_MEAN`, the default `optimized_metric` that
checkpointing, early stopping, the blend and sweeps maximize; one source: its AUROC). The test step collects the
score, label and generating model of every pair; at the end of the test epoch the module writes, into its output
directory, ``metrics.json`` (AUROC and TNR@FNR=0.2 per test model plus the average, for the judge and for an
optional zero-shot reference scorer on the same pairs), ``roc.png`` and ``scores.jsonl`` (every test pair's
scores and label, for ROC overlays across runs). Pairs of a mixture of sources carry their source's name: validation
then also logs ``val/auroc/<source>`` and their mean ``val/auroc_source_mean``, and metrics.json gets
``per_source`` (AUROC per source and per (source, model), the reference beside each) and the flat
``test/auroc/<source>``, ``test/auroc_reference/<source>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from deepprune.judge.scores import (
    SCORES_FILE,
    TEST_AUROC,
    TEST_AUROC_REFERENCE,
    TEST_TNR,
    TEST_TNR_REFERENCE,
    score_record,
    write_scores,
)
from deepprune.runtime import get_logger

log = get_logger(__name__)

#: AUROC over all validation pairs, pooled across sources.
VAL_AUROC = "val/auroc"
#: The unweighted mean over sources of ``val/auroc/<source>`` (one source: its AUROC): the default
#: ``optimized_metric`` of conf/train.yaml, for checkpointing, early stopping, the blend and sweeps.
VAL_AUROC_SOURCE_MEAN = "val/auroc_source_mean"


def linear_warmup(
    optimizer: torch.optim.Optimizer, num_training_steps: int, warmup_ratio: float = 0.1, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to ``min_lr_ratio`` x the peak."""
    total = max(int(num_training_steps), 1)
    warmup = int(round(warmup_ratio * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return max(min_lr_ratio, 1.0 - (1.0 - min_lr_ratio) * progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class JudgeModule(L.LightningModule):
    """Train/validate/test a pair judge.

    Args:
        head: the judge head (``forward(input_ids, attention_mask) -> logits[B, 2]``, column 1 = "same").
        loss_fn: ``loss(logits, labels) -> scalar``.
        optimizer: factory ``params -> Optimizer`` (Hydra ``_partial_``).
        scheduler: factory ``(optimizer, num_training_steps) -> LRScheduler`` stepped every step, or None.
        compile: ``torch.compile`` the head in place (keeps the ``head.*`` checkpoint keys).
        reference_scorer: zero-argument factory of a `PairScorer` scored on the same test pairs (the
            SentenceBERT-cosine reference by default in conf/train.yaml), or None.
        reference_name: the reference's name in metrics.json and the ROC legend.
        output_dir: where ``metrics.json`` and ``roc.png`` go (default: the Hydra run directory).
        fnr: the false-negative rate of the TNR metric (paper: 0.2).
        new_layer_lr: learning rate of the parameters whose names contain one of ``new_layer_patterns`` (the
            classification / pair layer a pretrained backbone lacks); None: the optimizer's lr for all.
        new_layer_patterns: name fragments of those parameters.
    """

    def __init__(
        self,
        head: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        compile: bool = False,
        reference_scorer: Callable[[], Any] | None = None,
        reference_name: str = "embedding",
        output_dir: str | Path | None = None,
        fnr: float = 0.2,
        new_layer_lr: float | None = None,
        new_layer_patterns: tuple[str, ...] | list[str] = ("classifier", "score"),
    ) -> None:
        super().__init__()
        # plain types (not Hydra's ListConfig) so checkpoints load with torch.load(weights_only=True)
        new_layer_patterns = tuple(str(p) for p in new_layer_patterns)
        new_layer_lr = None if new_layer_lr is None else float(new_layer_lr)
        # nn.Modules are in the state_dict; the factories (functools.partial of Hydra targets) stay out too, so
        # checkpoints load with torch.load(weights_only=True). train.py saves the resolved config beside them.
        self.save_hyperparameters(ignore=["head", "loss_fn", "optimizer", "scheduler", "reference_scorer"])
        from torchmetrics.classification import BinaryAUROC

        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler

        self.head = head
        self.loss_fn = loss_fn
        self.val_auroc = BinaryAUROC()
        self.reference_scorer = reference_scorer
        self._reference: Any = None  # built on first use, then kept: a blended run tests twice on the same pairs
        self._test_rows: list[tuple[int, float, int, str, tuple[str, str]]] = []  # (pair index, score, ...)
        self._val_rows: list[tuple[int, float, int, str | None]] = []  # (pair index, score, label, source)
        self.test_results: dict[str, Any] = {}
        self.test_pairs: tuple[list[float], list[int]] = ([], [])  # (scores, labels) of the last test

    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.head.compile()

    def on_fit_start(self) -> None:
        # transformers' from_pretrained returns modules in eval mode and Lightning does not switch them: without
        # this, training would run with dropout off (Lightning restores each module's mode after validation)
        self.train()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(input_ids=input_ids, attention_mask=attention_mask)

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss_fn(logits, batch["labels"])
        return loss, logits.detach().float().softmax(-1)[:, 1]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_rows = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, probs = self._step(batch)
        self.val_auroc.update(probs, batch["labels"])
        n = len(batch["labels"])
        indices = batch.get("indices") or [-1] * n
        self._val_rows.extend(
            zip(indices, probs.tolist(), batch["labels"].tolist(), batch.get("sources") or [None] * n)
        )
        self.log("val/loss", loss, on_epoch=True, batch_size=n)
        self.log(VAL_AUROC, self.val_auroc, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)

    def on_validation_epoch_end(self) -> None:
        from deepprune.judge.metrics import judge_metrics

        rows = unique_rows(self._gather(self._val_rows))  # every rank logs the same values
        if not rows:
            return
        if all(r[2] is None for r in rows):
            # one source: the mean over sources is its AUROC, so optimized_metric=val/auroc_source_mean (the
            # default) also checkpoints a single-source run
            auroc = judge_metrics([r[0] for r in rows], [r[1] for r in rows])["auroc"]
            if not math.isnan(auroc):
                self.log(VAL_AUROC_SOURCE_MEAN, auroc, on_step=False, on_epoch=True)
            return
        aurocs = []
        for source in sorted({str(r[2]) for r in rows}):
            mine = [r for r in rows if str(r[2]) == source]
            auroc = judge_metrics([r[0] for r in mine], [r[1] for r in mine])["auroc"]
            if not math.isnan(auroc):  # a source whose validation pairs hold one class has no AUROC
                self.log(f"{VAL_AUROC}/{source}", auroc, on_step=False, on_epoch=True, batch_size=len(mine))
                aurocs.append(auroc)
        if aurocs:
            # pooled val/auroc also rewards telling sources apart (their same-answer rates differ); the mean of the
            # per-source AUROCs weighs each source's own ranking equally
            self.log(VAL_AUROC_SOURCE_MEAN, sum(aurocs) / len(aurocs), on_step=False, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        self._test_rows = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, probs = self._step(batch)
        self.log("test/loss", loss, on_epoch=True, batch_size=len(batch["labels"]))
        n = len(batch["labels"])
        indices = batch.get("indices") or [-1] * n
        sources = batch.get("sources") or [None] * n
        problems = batch.get("problem_ids") or [None] * n
        rows = zip(
            indices, probs.tolist(), batch["labels"].tolist(), batch["models"], batch["texts"], sources, problems
        )
        self._test_rows.extend(rows)

    def on_test_epoch_end(self) -> None:
        rows = unique_rows(self._gather(self._test_rows))
        if self.trainer.is_global_zero and rows:
            self.test_results = self.score_test(rows)
        results = self.trainer.strategy.broadcast(self.test_results, src=0)
        per_source = [k for k in results if k.startswith((f"{TEST_AUROC}/", f"{TEST_AUROC_REFERENCE}/"))]
        for key in (TEST_AUROC, TEST_TNR, TEST_AUROC_REFERENCE, *per_source):
            if key in results and results[key] is not None and not math.isnan(results[key]):
                self.log(key, float(results[key]), rank_zero_only=True)

    def validation_pairs(self) -> tuple[list[float], list[int]]:
        """(scores, labels) of the last validation pass, each pair once (all ranks): calibration fits on them."""
        rows = unique_rows(self._gather(self._val_rows))
        return [float(r[0]) for r in rows], [int(r[1]) for r in rows]

    def _gather(self, rows: list) -> list:
        if self.trainer.world_size <= 1:
            return rows
        import torch.distributed as dist

        parts: list[Any] = [None] * self.trainer.world_size
        dist.all_gather_object(parts, rows)
        return [r for part in parts for r in part]

    def score_test(self, rows: Iterable[tuple]) -> dict[str, Any]:
        """Per-model (and, for a mixture, per-source) metrics for the judge and the reference, written to
        metrics.json, roc.png and scores.jsonl. A row is ``(score, label, model, texts)``, ``(..., texts, source)``
        or ``(..., source, problem_id)``; missing fields are None."""
        from deepprune.judge.metrics import AVERAGE, per_model_metrics, plot_roc
        from deepprune.runtime import run_dir, write_metrics

        rows = [(*r, *[None] * (6 - len(r))) for r in rows]
        scores, labels, models, texts, sources, problems = (list(x) for x in zip(*rows))
        self.test_pairs = ([float(v) for v in scores], [int(v) for v in labels])
        fnr = self.hparams.fnr
        judge = per_model_metrics(scores, labels, models, fnr=fnr)
        results: dict[str, Any] = {
            TEST_AUROC: judge[AVERAGE]["auroc"],
            TEST_TNR: judge[AVERAGE]["tnr_at_fnr"],
            "per_model": judge,
        }
        curves = {f"judge: {m}": _select(scores, labels, models, m) for m in judge if m != AVERAGE}
        if self.reference_scorer is not None:
            name = self.hparams.reference_name
            if self._reference is None:
                self._reference = self.reference_scorer()
            ref_scores = [float(s) for s in self._reference.score(texts)]
            ref = per_model_metrics(ref_scores, labels, models, fnr=fnr)
            results.update(
                {
                    TEST_AUROC_REFERENCE: ref[AVERAGE]["auroc"],
                    TEST_TNR_REFERENCE: ref[AVERAGE]["tnr_at_fnr"],
                    "reference": name,
                    "per_model_reference": ref,
                }
            )
            curves.update({f"{name}: {m}": _select(ref_scores, labels, models, m) for m in ref if m != AVERAGE})
            log.info("test AUROC: judge %.4f, %s reference %.4f", results[TEST_AUROC], name, ref[AVERAGE]["auroc"])
        else:
            log.info("test AUROC: judge %.4f", results[TEST_AUROC])
            ref_scores = None
        if any(source is not None for source in sources):
            known = all(p is not None for p in problems)
            # problem ids repeat across sources ("0", "1", ...), so an interval's unit is (source, problem)
            groups = [f"{src}\x1f{p}" for src, p in zip(sources, problems)] if known else None
            results |= _per_source_results(scores, labels, sources, models, ref_scores, fnr, groups)
        out = Path(self.hparams.output_dir) if self.hparams.output_dir is not None else run_dir()
        write_metrics(results, out)
        plot_roc(curves, out / "roc.png", title="Judge ROC on held-out test pairs")
        # per-pair scores (no texts): `python -m deepprune.report` overlays the ROC curves of a sweep's runs. The
        # pairs are in dataset order (unique_rows), so i is the test pair's index
        ref_column = ref_scores if ref_scores is not None else [None] * len(scores)
        records = [
            score_record(i, y, p, model=m, problem_id=pid, score_reference=r, source=src)
            for i, (p, y, m, r, pid, src) in enumerate(zip(scores, labels, models, ref_column, problems, sources))
        ]
        write_scores(out / SCORES_FILE, records)
        return results

    def param_groups(self) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
        """Trainable parameters; with ``new_layer_lr`` (and such layers): the backbone group and the new layers."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if self.hparams.new_layer_lr is None:
            return [p for _, p in named]
        patterns = tuple(self.hparams.new_layer_patterns)
        new = [p for n, p in named if _is_new_layer(n, patterns)]
        if not new:  # e.g. a generative head: its label rows belong to the pretrained output layer
            log.info("module.new_layer_lr: no trainable parameter named %s; one learning rate for all", patterns)
            return [p for _, p in named]
        old = [p for n, p in named if not _is_new_layer(n, patterns)]
        return [{"params": old}, {"params": new, "lr": float(self.hparams.new_layer_lr)}]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.param_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, num_training_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def unique_rows(rows: Iterable[tuple]) -> list[tuple]:
    """Test rows ``(pair index, score, label, model, texts)`` gathered from every rank -> ``(score, label, model,
    texts)`` once per pair, in dataset order. Under DDP, DistributedSampler pads the last ranks with repeats of the
    first pairs so every rank has as many batches; scoring a repeat twice would bias the metrics. Rows without an
    index (-1) are all kept."""
    rows = list(rows)
    seen: dict[int, tuple] = {}
    unindexed = []
    for row in rows:
        if row[0] < 0:
            unindexed.append(row[1:])
        else:
            seen.setdefault(row[0], row[1:])
    return [seen[i] for i in sorted(seen)] + unindexed


def _per_source_results(
    scores: list,
    labels: list,
    sources: list,
    models: list,
    reference: list | None,
    fnr: float,
    problems: list | None = None,
) -> dict[str, Any]:
    """metrics.json's per-source part: ``per_source`` (`deepprune.judge.metrics.per_source_metrics`, with
    problem-bootstrap intervals when ``problems`` is given) and the flat ``test/auroc/<source>`` and
    ``test/auroc_reference/<source>`` (pooled over the source's test pairs)."""
    from deepprune.judge.metrics import per_source_metrics

    table = per_source_metrics(scores, labels, sources, models, reference=reference, fnr=fnr, problems=problems)
    flat = {f"{TEST_AUROC}/{name}": row["auroc"] for name, row in table.items()}
    if reference is not None:
        flat |= {f"{TEST_AUROC_REFERENCE}/{name}": row["auroc_reference"] for name, row in table.items()}
    for name, row in table.items():
        ci = row.get("auroc_diff_ci")
        diff = "" if ci is None else f", judge - reference {row['auroc_diff']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
        log.info(
            "test AUROC %s: judge %.4f, reference %.4f%s",
            name,
            row["auroc"],
            row.get("auroc_reference", math.nan),
            diff,
        )
    return {"per_source": table, **flat}


def _is_new_layer(name: str, patterns: Iterable[str]) -> bool:
    return any(p in name.split(".") for p in patterns)


def _select(scores: list, labels: list, models: list, model: str) -> tuple[list[float], list[int]]:
    keep = [i for i, m in enumerate(models) if m == model]
    return [scores[i] for i in keep], [labels[i] for i in keep]
