"""Online pruning entry point: ``python -m deepprune.online`` (Hydra app, config ``conf/online.yaml``).

Runs a policy (DeepPrune by default) over problems with a generator (replay by default) and its cons@N
reference on the same traces; writes ``results.jsonl`` (one record per problem, resumable), ``metrics.json``
and logs a side-by-side table. ``tau=0.5,0.63,0.75`` sweeps without ``-m`` and ends with one table.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR, get_logger

log = get_logger("deepprune.online")

_AT_LEAST_ONE = ("n", "max_clusters", "k1", "k2", "k3", "warmup", "window")


def check_config(cfg: DictConfig) -> None:
    """Reject bad settings with the offending key, before any model or engine is loaded."""
    if not 0.0 <= float(cfg.tau) <= 1.0:
        raise ValueError(f"tau={cfg.tau} is out of range: `tau` must be in [0, 1]")
    for key in _AT_LEAST_ONE:
        if key in cfg.policy and int(cfg.policy[key]) < 1:
            raise ValueError(f"policy.{key}={cfg.policy[key]} is invalid: it must be >= 1")
    if cfg.reference not in (None, "cons"):
        raise ValueError(f"reference={cfg.reference!r}: must be `cons` or null")


def check_questions(problems: list, where: str) -> None:
    """Live generation needs a question for every problem."""
    if not problems:
        raise ValueError(f"{where}: no problems")
    empty = [p.problem_id for p in problems if not (p.question or "").strip()]
    if empty:
        raise ValueError(f"{where}: {len(empty)} problem(s) without a question, e.g. {empty[:3]} (set question_key)")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="online")
def main(cfg: DictConfig) -> dict:
    from hydra.utils import instantiate

    from deepprune.online.policies import ConsensusPolicy
    from deepprune.online.runner import drop_seen_problems, metrics_table, run_online

    check_config(cfg)
    problems = None
    if cfg.get("problems"):
        problems = instantiate(cfg.problems)
        check_questions(problems, f"problems ({cfg.problems.get('path', cfg.problems._target_)})")
    policy = instantiate(cfg.policy)
    generator = instantiate(cfg.generator)
    try:
        if problems is None:
            if not callable(getattr(generator, "problems", None)):
                raise ValueError("this generator needs a problem set: add problems=<name> (conf/problems/)")
            problems = generator.problems()
        # from the `judge` group, not the policy's judge: cons@N, DeepConf and the oracle in a sweep beside
        # DeepPrune must run on the same problems
        seen = getattr(instantiate(cfg.judge), "seen_problems", set()) if cfg.get("judge") else set()
        if seen and cfg.unseen_problems_only:
            problems, dropped = drop_seen_problems(problems, seen)
            log.info("skipping %d problem(s) the judge trained or validated on (unseen_problems_only)", dropped)
            if not problems:
                raise ValueError(f"all {dropped} problems were seen by the judge in training: unseen_problems_only")
        if cfg.max_problems is not None:
            problems = problems[: cfg.max_problems]
        reference = ConsensusPolicy(n=cfg.n) if cfg.reference == "cons" else None
        metrics = run_online(problems, generator, policy, cfg.paths.output_dir, reference, cfg.seed, cfg.resume_dir)
    finally:
        generator.close()
    log.info("online results (%s):\n%s", cfg.paths.output_dir, metrics_table(metrics, {"tau": cfg.tau}))
    return metrics


if __name__ == "__main__":
    main()
