"""Train the pair judge: python -m deepprune.train [group=option ...] [key=value ...] [-m for sweeps].

Wiring only (conf/train.yaml): build the head, the pair DataModule (which fails on an unusable split before any
training), the JudgeModule, callbacks, logger and Trainer; fit (resuming from `ckpt_path` if set), test with the
best checkpoint (metrics.json + roc.png in the run dir, judge and zero-shot reference on the same pairs), export
the head to <run_dir>/export, and return the optimized metric for sweepers.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from deepprune.runtime import CONF_DIR, get_logger, write_json, write_metrics
from deepprune.validation import check_int_at_least, check_probability

log = get_logger(__name__)


_ABSENT = object()

# integer settings >= 1 (null allowed where it means "no limit"/"default"), checked where the key exists
_AT_LEAST_ONE = {
    "trainer.max_epochs": True,  # -1 would mean "forever" to Lightning
    "data.batch_size": False,
    "data.eval_batch_size": False,
    "truncation.k": True,
    "scale.token_k": True,
    "scale.word_k": True,
}


def check_train_config(cfg: DictConfig) -> None:
    """Reject bad settings with the offending key, before any trace, model or trainer is loaded."""
    check_int_at_least("seed", cfg.seed, 0)
    for key, allow_none in _AT_LEAST_ONE.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT:
            check_int_at_least(key, value, 1, allow_none=allow_none)
    for key in ("data.val_fraction", "data.test_fraction"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            check_probability(key, value)
    traces = OmegaConf.select(cfg, "data.group_batch_traces", default=None)
    if traces is not None:
        check_int_at_least("data.group_batch_traces", traces, 2)
    from deepprune.judge.mixture import check_sources  # light: no torch

    check_sources(OmegaConf.select(cfg, "data.sources", default=None))


def train(cfg: DictConfig) -> float | None:
    """Fit, test and export one judge as configured; returns the best value of `cfg.optimized_metric`."""
    check_train_config(cfg)  # before the imports too: a bad value stops in about a second
    import lightning as L
    from hydra.utils import instantiate

    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    write_json(out / "config.json", OmegaConf.to_container(cfg, resolve=True))
    truncation = instantiate(cfg.truncation)  # the prefix rule: the export records it, online applies it
    datamodule = instantiate(cfg.data, truncation=truncation, sampler=instantiate(cfg.sampler))
    # traces read and validated, split, labelled and checked before the model loads: a bad source, an empty or a
    # one-class split fails fast
    datamodule.prepare_pairs()
    head = datamodule.head = instantiate(cfg.model)
    datamodule.setup("fit")
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = instantiate(
        cfg.module, head=head, loss_fn=instantiate(cfg.loss), optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler, output_dir=str(out),
    )  # fmt: skip
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)

    blend = instantiate(cfg.blend) if cfg.get("blend") else None  # deepprune.judge.blend.WeightBlend
    if blend is not None:
        blend.snapshot(module.head)  # the untrained start, before any step
    fit_cpu, fit_wall = time.process_time(), time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_cpu = time.process_time() - fit_cpu  # this process, all threads: what training cost, whatever the load
    fit_wall = time.perf_counter() - fit_wall
    checkpoint = trainer.checkpoint_callback
    best_ckpt = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    best = checkpoint.best_model_score if best_ckpt else trainer.callback_metrics.get(cfg.optimized_metric)
    best = None if best is None else float(best)
    best_checkpoint, blend_choice = best_ckpt, None
    trainer.test(module, datamodule=datamodule, ckpt_path=best_ckpt)  # None (no checkpoint): the final weights
    if blend is not None:
        # the tuned judge's test metrics stay beside the blend's (reported only: alpha is chosen on validation)
        tuned_test = {k: v for k, v in module.test_results.items() if k.startswith("test/")}
        blend_choice = blend.choose(trainer, module, datamodule, best_ckpt)
        blend_choice.extra["tuned_test"] = tuned_test
        # sweepers optimize what is exported: the blend's validation value (the tuned checkpoint's is kept apart)
        blend_choice.extra[f"best_tuned_{cfg.optimized_metric}"] = best
        best = max(v for v in blend_choice.val_auroc if v == v)
        best_ckpt = None  # test, calibration and export read the blend the module now holds
        log.info("blend: alpha %.2f chosen on %s (%s)", blend_choice.alpha, blend.metric, blend_choice.to_record())
        if blend_choice.alpha != 1.0:  # alpha 1 is the tuned judge just tested
            trainer.test(module, datamodule=datamodule, ckpt_path=None)
    calibration = None
    if cfg.get("calibration") is not None:
        # the best weights' scores on the validation pairs (the last validation pass may be a later epoch's)
        trainer.validate(module, datamodule=datamodule, ckpt_path=best_ckpt, verbose=False)
        val_scores, val_labels = module.validation_pairs()  # a collective under DDP: every rank takes part
        if trainer.is_global_zero:
            from deepprune.judge.calibration import calibrate_judge

            c = cfg.calibration
            calibration = calibrate_judge(
                val_scores, val_labels, method=c.method, space=c.space, tau_target=c.tau_target,
                tau_rate=float(c.tau_rate), test=module.test_pairs, plot_path=out / "reliability.png",
            )  # fmt: skip
            if "fit_error" in calibration.metrics:
                log.warning("calibration (%s) not fitted: %s", c.method, calibration.metrics["fit_error"])
            log.info("calibration %s; tau=auto %s", calibration.metrics, calibration.tau_auto)

    results = {
        **module.test_results,
        f"best_{cfg.optimized_metric}": best,
        "best_checkpoint": best_checkpoint,
        "data_counts": datamodule.counts,
        **datamodule.mixture_report(),  # data.sources: per-source roles, weights, counts, skipped sources
        "global_steps": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "fit_cpu_s": round(fit_cpu, 1),
        "fit_wall_s": round(fit_wall, 1),
    }
    if blend_choice is not None:
        results["blend"] = blend_choice.to_record()
    if calibration is not None:
        results |= {k: v for k, v in calibration.metrics.items() if "/" in k}
        results["calibration"] = {k: v for k, v in calibration.metrics.items() if "/" not in k}
        results["tau_auto"] = calibration.tau_auto.to_record() if calibration.tau_auto is not None else None
    if cfg.get("export") and trainer.is_global_zero:
        from deepprune.judge.export import export_head

        meta = {
            "truncation": datamodule.rule.to_record(),
            "metrics": {k: v for k, v in results.items() if "/" in k},
            # online evaluation skips these, so a judge is never scored on problems it trained or validated on
            "seen_problems": sorted(set(datamodule.problem_ids["train"]) | set(datamodule.problem_ids["val"])),
        }
        if datamodule.problem_ids_by_source:  # a mixture: the ids of one source may name other problems in another
            meta["seen_problems_by_source"] = {
                source: sorted(set(ids["train"]) | set(ids["val"]))
                for source, ids in datamodule.problem_ids_by_source.items()
            }
        if blend_choice is not None:
            meta["blend"] = blend_choice.to_record()
        if calibration is not None:  # every scorer that loads the export applies it; online's tau=auto reads it
            meta |= calibration.export_meta()
        results["export_dir"] = str(export_head(module.head, out / "export", meta))
    if trainer.is_global_zero:
        write_metrics(results, out)
        log.info("run dir %s; %s", out, {k: v for k, v in results.items() if "/" in k})
    return best if best is None or not math.isnan(best) else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
