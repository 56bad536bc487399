"""Online pruning entry point: ``python -m deepprune.online`` (Hydra app, config ``conf/online.yaml``).

Runs a policy (DeepPrune by default) over problems with a generator (replay by default) and its cons@N
reference on the same traces; writes ``results.jsonl`` (one record per problem, resumable), ``metrics.json``
and logs a side-by-side table. ``tau=0.5,0.63,0.75`` sweeps without ``-m`` and ends with one table. ``tau=auto``
takes the threshold an exported judge recorded on its validation pairs (or chooses one there for ``tau_target``
and ``tau_rate``) and logs it; ``orders=R`` replays each problem in R seeded arrival orders, and the table gives
95% bootstrap intervals over problems. ``concurrency=C`` keeps C problems in flight on the one generator (with
``generator=vllm`` their traces share the engine; under replay the results equal the sequential run's).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepprune.online.settings import check_config, check_questions, outcome_settings, traces_per_problem
from deepprune.runtime import CONF_DIR, get_logger, hydra_choice, write_metrics

log = get_logger("deepprune.online")


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
    generator = instantiate(cfg.generator)
    policy = None  # built once n is known (n=null: from the replayed traces)
    tau_auto = None  # tau=auto: the choice made on the judge's validation pairs
    try:
        if problems is None:
            if not callable(getattr(generator, "problems", None)):
                raise ValueError("this generator needs a problem set: add problems=<name> (conf/problems/)")
            problems = generator.problems()
        # from the `judge` group, not the policy's judge: cons@N, DeepConf and the oracle in a sweep beside
        # DeepPrune must run on the same problems
        judge = instantiate(cfg.judge) if cfg.get("judge") else None
        seen = judge.seen_problems_in(hydra_choice("source")) if hasattr(judge, "seen_problems_in") else set()
        if str(cfg.tau) == "auto":
            from deepprune.judge.calibration import tau_from_record

            tau_auto = tau_from_record(getattr(judge, "record", None), cfg.get("tau_target"), cfg.get("tau_rate"))
            log.info("%s", tau_auto)
            cfg.tau = tau_auto.tau  # the policy's tau interpolates it
        if seen and cfg.unseen_problems_only:
            problems, dropped = drop_seen_problems(problems, seen)
            log.info("skipping %d problem(s) the judge trained or validated on (unseen_problems_only)", dropped)
            if not problems:
                raise ValueError(f"all {dropped} problems were seen by the judge in training: unseen_problems_only")
        if cfg.max_problems is not None and len(problems) > cfg.max_problems:
            log.info(
                "max_problems=%d: running the first %d of %d problems (max_problems=null runs all)",
                cfg.max_problems, cfg.max_problems, len(problems),
            )  # fmt: skip
            problems = problems[: cfg.max_problems]
        cfg.n = traces_per_problem(generator, problems, cfg.n)  # the policy's n interpolates it
        policy = instantiate(cfg.policy)
        reference = ConsensusPolicy(n=cfg.n) if cfg.reference == "cons" else None
        metrics = run_online(
            problems, generator, policy, cfg.paths.output_dir, reference, cfg.seed, cfg.resume_dir,
            settings=outcome_settings(cfg), orders=int(cfg.get("orders", 1)),
            concurrency=int(cfg.get("concurrency", 1)),
        )  # fmt: skip
        if tau_auto is not None:
            metrics["tau_auto"] = tau_auto.to_record()
            write_metrics(metrics, cfg.paths.output_dir)
    finally:
        generator.close()
        close_judge = getattr(getattr(policy, "judge", None), "close", None)
        if callable(close_judge):  # a vLLM-served judge owns an engine process
            close_judge()
    log.info("online results (%s):\n%s", cfg.paths.output_dir, metrics_table(metrics, {"tau": cfg.tau}))
    if tau_auto is not None:
        log.info("%s", tau_auto)
    return metrics


if __name__ == "__main__":
    main()
