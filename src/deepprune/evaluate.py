"""Offline evaluation of a pair judge (exported) or a zero-shot reference on held-out trace pairs.

    python -m deepprune.evaluate                                  # SentenceBERT cosine on CHAMP's held-out models
    python -m deepprune.evaluate scorer=exported scorer.path=<export dir>
    python -m deepprune.evaluate scorer=zeroshot_llm model=smollm2 model.finetune=frozen max_pairs=400

Pairs of the test models are sampled (seeded, equal share per model), truncated as in training, scored, and
written to scores.jsonl line by line (a rerun in the same run dir resumes); metrics.json holds AUROC and
TNR@FNR per model and averaged, roc.png one ROC curve per model.
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


def truncation_settings(cfg: DictConfig, scorer: Any) -> dict[str, Any]:
    """The export's recorded prefix rule when asked for and known, else the data.* settings of training."""
    if cfg.judge_truncation and getattr(scorer, "truncation", None):
        return dict(scorer.truncation)
    if cfg.data.truncation == "words":
        words = OmegaConf.to_object(cfg.data.reasoning_words) if cfg.data.reasoning_words else None
        return {"kind": "words", "k": int(cfg.data.word_k), "words": words}
    return {"kind": "tokens", "k": int(cfg.data.token_k)}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from hydra.utils import instantiate

    from deepprune.judge.metrics import per_model_metrics, plot_roc
    from deepprune.judge.scorers import sample_pairs, score_pairs_resumable, truncator_from_settings

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
    scorer = instantiate(cfg.scorer)
    settings = truncation_settings(cfg, scorer)
    truncate = truncator_from_settings(settings, getattr(scorer, "tokenizer", None))
    prefix = functools.lru_cache(maxsize=None)(truncate)  # each trace is in many pairs: truncate it once
    rng = random.Random(f"{cfg.seed}-order")
    items = []
    for i, p in enumerate(pairs):
        a, b = prefix(p.a.text), prefix(p.b.text)
        if cfg.shuffle_order and rng.random() < 0.5:
            a, b = b, a
        items.append({"i": i, "problem_id": p.a.problem_id, "model": str(p.a.model), "label": p.label, "a": a, "b": b})
    records = score_pairs_resumable(scorer, items, cfg.scores_file, cfg.chunk_size)
    scores, labels, models = ([r[k] for r in records] for k in ("score", "label", "model"))
    metrics = per_model_metrics(scores, labels, models, fnr=cfg.fnr)
    curves: dict[str, tuple[list[float], list[int]]] = {}
    for s, y, m in zip(scores, labels, models):
        curves.setdefault(m, ([], []))[0].append(s)
        curves[m][1].append(y)
    out = Path(cfg.scores_file).parent
    name = cfg.scorer._target_.rsplit(".", 1)[-1]
    plot_roc(dict(sorted(curves.items())), out / "roc.png", title=f"{name}: pairs of held-out models")
    result = {
        "metrics": metrics,
        "average_auroc": metrics["average"]["auroc"],
        "scorer": OmegaConf.to_container(cfg.scorer, resolve=False),
        "truncation": settings,
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
            model,
            row["auroc"],
            cfg.fnr,
            row["tnr_at_fnr"],
            row["n"],
            row["pos"],
        )
    log.info("run dir %s", run_dir())
    return result["average_auroc"]


if __name__ == "__main__":
    main()
