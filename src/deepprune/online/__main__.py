"""Online pruning entry point: ``python -m deepprune.online`` (Hydra app, config ``conf/online.yaml``).

Runs a policy (DeepPrune by default) over problems with a generator (replay by default) and its cons@N
reference on the same traces; writes ``results.jsonl`` (one record per problem, resumable), ``metrics.json``
and logs a side-by-side table. ``tau=0.5,0.63,0.75`` sweeps without ``-m`` and ends with one table. ``tau=auto``
takes the threshold an exported judge recorded on its validation pairs (or chooses one there for ``tau_target``
and ``tau_rate``) and logs it; ``orders=R`` replays each problem in R seeded arrival orders, and the table gives
95% bootstrap intervals over problems.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR, get_logger, write_metrics
from deepprune.validation import check_choice, check_int_at_least, check_probability

log = get_logger("deepprune.online")

_AT_LEAST_ONE = ("n", "max_clusters", "k1", "k2", "k3", "warmup", "window")


def check_config(cfg: DictConfig) -> None:
    """Reject bad settings with the offending key, before any model or engine is loaded."""
    from hydra.utils import get_class

    if str(cfg.tau) != "auto":  # auto: chosen on the judge's validation pairs once the judge is known
        check_probability("tau", cfg.tau)
    check_int_at_least("orders", cfg.get("orders", 1), 1)
    check_int_at_least("n", cfg.n, 1, allow_none=True)
    check_int_at_least("max_problems", cfg.max_problems, 1, allow_none=True)
    check_int_at_least("seed", cfg.seed, 0)
    for key in _AT_LEAST_ONE:
        if key in cfg.policy:  # policy.n follows n (null until traces_per_problem sets it)
            check_int_at_least(f"policy.{key}", cfg.policy[key], 1, allow_none=key == "n")
    check_choice("reference", cfg.reference, (None, "cons"))
    if cfg.n is None and not callable(getattr(get_class(cfg.generator._target_), "available", None)):
        raise ValueError("n=null takes the traces per problem of a replayed source: set n=<traces per problem>")


def traces_per_problem(generator: Any, problems: list, n: int | None) -> int:
    """``n``, or (``n=None``) the fewest traces any problem has in the replayed source.

    A set ``n`` above what a replayed problem has stops here, before any problem runs (unless the replay
    generator's ``allow_fewer``).
    """
    available = getattr(generator, "available", None)
    if not callable(available):
        assert n is not None, "check_config lets n=null through only for generators with available()"
        return n
    counts = {p.problem_id: available(p.problem_id) for p in problems}
    fewest = min(counts.values())
    if n is None:
        log.info("n=null: %d traces per problem, the fewest any of the %d problems has", fewest, len(problems))
        if fewest < 1:
            raise ValueError(f"n=null: problem {min(counts, key=counts.get)!r} has no traces in the source")
        return fewest
    if n > fewest and not getattr(generator, "allow_fewer", False):
        short = [pid for pid, c in counts.items() if c < n]
        raise ValueError(
            f"n={n} is more than the source has for {len(short)} of {len(problems)} problems (e.g. {short[0]!r}: "
            f"{counts[short[0]]}); lower n, set n=null (the fewest per problem: {fewest}) or "
            "generator.allow_fewer=true"
        )
    return n


# config keys that do not change a problem's outcome: where files go, which problems run, where to resume from
# (orders adds runs with their own seeds: a run extended to more orders reuses the ones it has)
_NOT_OUTCOME = ("paths", "hydra", "resume_dir", "max_problems", "unseen_problems_only", "task_name", "orders")


def outcome_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without the keys that leave outcomes alone: the fingerprint a resumed run must match."""
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)
    for key in _NOT_OUTCOME:
        settings.pop(key, None)
    if isinstance(settings.get("source"), dict):
        settings["source"].pop("max_problems", None)  # selection, like max_problems
    return settings


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
        seen = getattr(judge, "seen_problems", set()) if judge is not None else set()
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
