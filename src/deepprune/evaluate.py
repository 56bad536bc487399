"""Offline evaluation of a pair judge (exported) or a zero-shot reference on held-out trace pairs.

    python -m deepprune.evaluate                                  # SentenceBERT cosine on CHAMP's held-out models
    python -m deepprune.evaluate judge=exported judge.export_dir=<export dir>
    python -m deepprune.evaluate judge=zeroshot_llm model=smollm2 model.finetune=frozen max_pairs=400

Pairs of the test models are sampled (seeded, equal share per model), cut by the judge's prefix rule (an export's
recorded rule, else the `truncation` group), scored, and written to scores.jsonl line by line (a rerun in the same
run dir resumes; a different evaluation refuses to reuse it); metrics.json holds AUROC and TNR@FNR per model and
averaged, roc.png one ROC curve per model. Logic: `deepprune.judge.evaluation`.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from deepprune.runtime import CONF_DIR, get_logger, run_dir, write_metrics

log = get_logger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from hydra.utils import instantiate

    from deepprune.judge.evaluation import sample_pairs, score_pairs_resumable
    from deepprune.judge.metrics import per_model_metrics, plot_roc

    judge_cfg = cfg.judge
    if cfg.get("scorer"):
        log.warning("`scorer=` is deprecated and will be removed: use judge=... (judge.export_dir for exports)")
        judge_cfg = cfg.scorer
    judge = instantiate(judge_cfg)  # an export is checked here; weights load on first use
    traces = instantiate(cfg.source)
    available = sorted({str(t.model) for t in traces})
    if cfg.test_models:
        missing = sorted(set(cfg.test_models) - set(available))
        if missing:
            raise ValueError(f"test_models {missing} not in the source; its models: {available}")
        traces = [t for t in traces if str(t.model) in set(cfg.test_models)]
    pairs, excluded = sample_pairs(traces, cfg.max_pairs, cfg.seed)
    if not pairs:
        raise ValueError(f"no labelled pairs among {len(traces)} traces (models {available})")
    rule = judge.prefix_rule if cfg.judge_truncation else None
    rule = rule if rule is not None else instantiate(cfg.truncation).bind(judge.tokenizer)
    prefix = functools.lru_cache(maxsize=None)(rule.cut)  # each trace is in many pairs: cut it once
    rng = random.Random(f"{cfg.seed}-order")
    items = []
    for i, p in enumerate(pairs):
        a, b = prefix(p.a.text), prefix(p.b.text)
        if cfg.shuffle_order and rng.random() < 0.5:
            a, b = b, a
        items.append({"i": i, "problem_id": p.a.problem_id, "model": str(p.a.model), "label": p.label, "a": a, "b": b})
    fingerprint = {
        "judge": OmegaConf.to_container(judge_cfg, resolve=True),
        "truncation": rule.to_record(),
        "source": OmegaConf.to_container(cfg.source, resolve=True),
        "test_models": sorted({str(t.model) for t in traces}),
        "max_pairs": cfg.max_pairs,
        "seed": cfg.seed,
        "shuffle_order": cfg.shuffle_order,
    }
    records = score_pairs_resumable(judge.scorer, items, cfg.scores_file, cfg.chunk_size, fingerprint)
    scores, labels, models = ([r[k] for r in records] for k in ("score", "label", "model"))
    metrics = per_model_metrics(scores, labels, models, fnr=cfg.fnr)
    curves: dict[str, tuple[list[float], list[int]]] = {}
    for s, y, m in zip(scores, labels, models):
        curves.setdefault(m, ([], []))[0].append(s)
        curves[m][1].append(y)
    out = Path(cfg.scores_file).parent
    name = judge_cfg.get("_target_", "judge").rsplit(".", 1)[-1]
    plot_roc(dict(sorted(curves.items())), out / "roc.png", title=f"{name}: pairs of held-out models")
    result = {
        "metrics": metrics,
        "average_auroc": metrics["average"]["auroc"],
        "judge": OmegaConf.to_container(judge_cfg, resolve=False),
        "truncation": rule.to_record(),
        "pairs": len(records),
        "excluded_traces": excluded,
        "test_models": sorted(set(models)),
    }
    write_metrics(result, out)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> float:
    result = evaluate(cfg)
    for model, row in result["metrics"].items():
        log.info(
            "%-14s AUROC %.3f  TNR@FNR=%.1f %.3f  (n=%d, same=%d)",
            model, row["auroc"], cfg.fnr, row["tnr_at_fnr"], row["n"], row["pos"],
        )  # fmt: skip
    log.info("run dir %s", run_dir())
    return result["average_auroc"]


if __name__ == "__main__":
    main()
