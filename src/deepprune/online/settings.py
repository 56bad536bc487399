"""Settings of an online run, checked and derived before any model or engine loads (`python -m deepprune.online`).

The entry module (``deepprune/online/__main__.py``) only wires config to these and to the runner:
:func:`check_config` rejects bad values naming the key, :func:`check_questions` the problems a live generator
cannot prompt, :func:`traces_per_problem` settles ``n`` from a replayed source, and :func:`outcome_settings` is the
fingerprint a resumed run must match.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from deepprune.runtime import get_logger
from deepprune.validation import check_choice, check_int_at_least, check_probability

log = get_logger("deepprune.online")

__all__ = ["check_config", "check_questions", "outcome_settings", "traces_per_problem"]

_AT_LEAST_ONE = ("n", "max_clusters", "k1", "k2", "k3", "warmup", "window")


def check_config(cfg: DictConfig) -> None:
    """Reject bad settings with the offending key, before any model or engine is loaded."""
    from hydra.utils import get_class

    if str(cfg.tau) != "auto":  # auto: chosen on the judge's validation pairs once the judge is known
        check_probability("tau", cfg.tau)
    check_int_at_least("orders", cfg.get("orders", 1), 1)
    check_int_at_least("concurrency", cfg.get("concurrency", 1), 1)
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
# (orders adds runs with their own seeds: a run extended to more orders reuses the ones it has; concurrency only
# changes how many run at once)
_NOT_OUTCOME = (
    "paths", "hydra", "resume_dir", "max_problems", "unseen_problems_only", "task_name", "orders", "concurrency",
)  # fmt: skip


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
