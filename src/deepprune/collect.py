"""Sample N traces per problem with a live generator and write them as trace JSONL: ``python -m deepprune.collect``.

Hydra app (``conf/collect.yaml``): ``problems=`` picks the problem set, ``generator=`` the backend (hf, vllm).
Traces are written one flushed line at a time (:class:`deepprune.traces.TraceWriter`) and the run resumes:
samples already in ``output`` are skipped. Trace ``sample_id`` ``i`` of a problem is always sampled with the
seed ``derive_seed(problem_seed(seed, problem_id), i)`` (`deepprune.online.generators.base`, the online runner's
formula), so a resumed run writes what an uninterrupted one would.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR, get_logger, progress
from deepprune.validation import check_int_at_least

log = get_logger("deepprune.collect")


def done_samples(path: Path, model: str) -> dict[str, set[int]]:
    """Sample ids already written for each problem by `model` (an absent file means none)."""
    from deepprune.traces import iter_traces

    done: dict[str, set[int]] = {}
    if path.exists():
        for t in iter_traces(path):
            if t.model == model and isinstance(t.sample_id, int):
                done.setdefault(t.problem_id, set()).add(t.sample_id)
    return done


def collect(problems, generator, n: int, seed: int, output: Path, keep_confidences: bool = True) -> Counter:
    """Generate the missing samples of every problem and append them to `output`; returns counts."""
    from deepprune.answers import extract_answer
    from deepprune.online.generators.base import TraceProgress, problem_seed
    from deepprune.traces import Trace, TraceWriter

    model = generator.model_name
    done = done_samples(output, model)
    counts: Counter = Counter()
    tracked = TraceProgress(generator, desc="traces")
    with TraceWriter(output) as writer:
        for problem in progress(problems, desc="collect", total=len(problems), unit="problem"):
            states = tracked.start(problem, n, problem_seed(seed, problem.problem_id))
            todo = [s for s in states if s.index not in done.get(problem.problem_id, set())]
            counts["skipped"] += len(states) - len(todo)
            if not todo:
                continue
            tracked.advance(todo)
            for s in todo:
                # a sample stopped before its end (never here with a full advance) gets no fallback answer
                answer = s.answer if s.finished else extract_answer(s.text, finished=False)
                writer.write(
                    Trace(
                        problem_id=problem.problem_id,
                        text=s.text,
                        model=model,
                        sample_id=s.index,
                        question=problem.question,
                        gold=problem.gold,
                        answer=answer,
                        num_tokens=s.num_tokens,
                        finished=s.finished,
                        dataset=problem.dataset,
                        token_confidences=list(s.token_confidences) if keep_confidences else None,
                        meta={
                            "seed": s.seed,
                            "generator": type(generator).__name__,
                            # finished traces either ended (EOS) or hit the length limit
                            "hit_max_tokens": s.num_tokens >= generator.max_tokens,
                        },
                    )
                )
            counts["written"] += len(todo)
            counts["tokens"] += sum(s.num_tokens for s in todo)
    tracked.close_bar()
    return counts


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="collect")
def main(cfg: DictConfig) -> dict:
    from hydra.utils import instantiate

    check_int_at_least("n", cfg.n, 1)
    check_int_at_least("seed", cfg.seed, 0)
    check_int_at_least("max_problems", cfg.max_problems, 1, allow_none=True)  # -1 would slice off the last one
    where = f"problems ({cfg.problems.get('path') or cfg.problems._target_})"
    problems = instantiate(cfg.problems)[: cfg.max_problems]
    if not problems:
        raise ValueError(f"{where}: no problems")
    empty = [p.problem_id for p in problems if not (p.question or "").strip()]
    if empty:
        raise ValueError(f"{where}: {len(empty)} problem(s) without a question, e.g. {empty[:3]} (set question_key)")
    generator = instantiate(cfg.generator)  # the engine starts only now, after the input checks
    try:
        counts = collect(problems, generator, int(cfg.n), int(cfg.seed), Path(cfg.output), cfg.keep_confidences)
    finally:
        generator.close()
    log.info("collect: %s -> %s", dict(counts), cfg.output)
    return dict(counts)


if __name__ == "__main__":
    main()
