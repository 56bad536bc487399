"""The async core: policies as coroutines on one generator, several problems in flight, outcomes unchanged.

Replay and the simulator under ``as_async`` must give, at any concurrency, exactly the outcomes of the sequential
run (same seeds, same traces); the runner's ``concurrency`` keeps results.jsonl and metrics.json equal to the
sequential run's; judge calls of concurrent problems never overlap and run on the one judge worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ExactChecker
from test_online import compose_online, small_traces

from deepprune.online.generators.base import AsyncGenerator, SyncAsAsync, as_async, run_sync
from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.online.generators.simulated import SimulatedGenerator
from deepprune.online.judges import OracleJudge
from deepprune.online.policies import ConsensusPolicy, DeepPrunePolicy
from deepprune.online.runner import RESULTS_FILE, run_online
from deepprune.online.simulated_judge import SimulatedJudge
from deepprune.runtime import read_jsonl_records
from deepprune.sources.answer_lists import AnswerList
from deepprune.truncation import TokenPrefix

C = ExactChecker()


def answer_lists(problems: int = 6) -> list[AnswerList]:
    """Problems with a majority answer, a strong runner-up and stragglers, lengths varying by answer."""
    rng = np.random.default_rng(0)
    out = []
    for p in range(problems):
        answers = [str(a) for a in rng.choice([p, p + 1, p + 2, p + 3], size=24, p=[0.45, 0.3, 0.15, 0.1])]
        lengths = [int(x) for x in rng.integers(40, 200, size=24)]
        out.append(AnswerList(f"s{p}", f"question {p}", str(p), answers, lengths=lengths))
    return out


def simulated_parts():
    gen = SimulatedGenerator(answer_lists(), length_model="empirical", checker=C)
    judge = SimulatedJudge(auroc=0.8, seed=1)
    policy = DeepPrunePolicy(judge, n=24, tau=0.5, max_clusters=4, k2=4, k3=6, prefix=TokenPrefix(30, None), checker=C)
    return gen, policy, ConsensusPolicy(n=24, checker=C)


def by_run(out: Path) -> dict[tuple[str, int], dict]:
    return {(r["problem_id"], r["order"]): r for r in read_jsonl_records(out / RESULTS_FILE)}


def test_as_async_picks_the_adapter_and_keeps_attributes() -> None:
    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer())
    agen = as_async(gen)
    assert isinstance(agen, SyncAsAsync) and isinstance(agen, AsyncGenerator)
    assert as_async(agen) is agen  # already async: unchanged
    assert agen.available("p1") == 4 and agen.peek_answer is not None  # forwarded to the replay generator


def test_concurrent_policies_equal_the_sequential_ones_and_interleave() -> None:
    gen, policy, ref = simulated_parts()
    problems = gen.problems()
    sequential = [policy.run(p, gen, 7) for p in problems] + [ref.run(p, gen, 7) for p in problems]
    calls: list[tuple[str, str]] = []

    class Logged(SyncAsAsync):
        async def start(self, problem, n, seed):
            calls.append(("start", problem.problem_id))
            return await super().start(problem, n, seed)

    agen = Logged(gen)

    async def all_at_once():
        return await asyncio.gather(
            *(policy.arun(p, agen, 7) for p in problems), *(ref.arun(p, agen, 7) for p in problems)
        )

    concurrent = asyncio.run(all_at_once())
    assert concurrent == sequential
    # every problem started before the first finished its prefix phase: they really were in flight together
    assert [c[1] for c in calls[: len(problems)]] == [p.problem_id for p in problems]
    # the outcomes differ between problems (a meaningful comparison), and pruning did happen
    assert len({o.answer for o in concurrent[: len(problems)]}) >= 4
    assert all(o.tokens < r.tokens for o, r in zip(concurrent, concurrent[len(problems) :]))


def test_runner_concurrency_4_gives_the_sequential_records_and_metrics(tmp_path: Path) -> None:
    gen, policy, ref = simulated_parts()
    one = run_online(gen.problems(), gen, policy, tmp_path / "one", ref, seed=2, checker=C, orders=3)
    gen, policy, ref = simulated_parts()
    four = run_online(gen.problems(), gen, policy, tmp_path / "four", ref, seed=2, checker=C, orders=3, concurrency=4)
    assert by_run(tmp_path / "four") == by_run(tmp_path / "one")
    assert len(by_run(tmp_path / "one")) == 6 * 3
    on_disk = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "four")]
    assert on_disk[0] == on_disk[1] and four == one
    assert 0 < one["token_reduction"] < 1


def test_runner_concurrency_resumes_and_reuses_finished_runs(tmp_path: Path) -> None:
    gen, policy, ref = simulated_parts()
    problems = gen.problems()
    run_online(problems[:2], gen, policy, tmp_path, ref, seed=2, checker=C, concurrency=3)
    seen: list[str] = []

    class Counting(DeepPrunePolicy):
        async def arun(self, problem, generator, seed):
            seen.append(problem.problem_id)
            return await super().arun(problem, generator, seed)

    counting = Counting(
        policy.judge, n=24, tau=0.5, max_clusters=4, k2=4, k3=6, prefix=TokenPrefix(30, None), checker=C
    )
    metrics = run_online(problems, gen, counting, tmp_path, ref, seed=2, checker=C, concurrency=3)
    assert sorted(seen) == [p.problem_id for p in problems[2:]]
    fresh, policy, ref = simulated_parts()
    assert metrics == run_online(problems, fresh, policy, tmp_path / "seq", ref, seed=2, checker=C)


def test_replayed_champ_with_a_real_judge_at_concurrency_4(tmp_path: Path) -> None:
    """The default online setup (real CHAMP traces, the MiniLM embedding judge) with a prefix rule counted in the
    judge's own tokens: the judge runs on its worker thread while the rule cuts prefixes on the loop thread."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    cfg = compose_online("truncation=tokens", "max_problems=4")
    HydraConfig.instance().set_config(cfg)
    gen = instantiate(cfg.generator)
    problems = gen.problems()[:4]
    cfg.n = 18
    runs = {}
    for c in (1, 4):
        policy = instantiate(cfg.policy)
        runs[c] = run_online(
            problems, gen, policy, tmp_path / str(c), ConsensusPolicy(n=18), seed=0, orders=2, concurrency=c
        )
    assert by_run(tmp_path / "4") == by_run(tmp_path / "1")
    assert runs[4] == runs[1]
    assert runs[1]["policies"]["deepprune"]["judge_calls_mean"] > 0


class Overlap:
    """A judge that notes overlapping calls and the threads it runs on (and is slow enough to overlap)."""

    def __init__(self) -> None:
        self.inside, self.most, self.threads = 0, 0, set()
        self.lock = threading.Lock()
        self.oracle = OracleJudge(C)

    def attach(self, generator) -> None:
        self.oracle.attach(generator)

    def score(self, pairs):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.threads.add(threading.current_thread().name)
        time.sleep(0.002)
        out = self.oracle.score(pairs)
        with self.lock:
            self.inside -= 1
        return out

    def input_tokens(self, pairs) -> int:
        return 0


def test_judge_calls_are_serialized_on_one_worker_thread(tmp_path: Path) -> None:
    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer())
    judge = Overlap()
    policy = DeepPrunePolicy(judge, n=4, tau=0.5, max_clusters=3, k2=2, prefix=TokenPrefix(2, None), checker=C)
    run_online(gen.problems(), gen, policy, tmp_path, None, seed=0, checker=C, orders=4, concurrency=6)
    assert len(read_jsonl_records(tmp_path / RESULTS_FILE)) == 12
    assert judge.most == 1 and len(judge.threads) == 1 and next(iter(judge.threads)).startswith("deepprune-judge")


def test_sync_run_works_inside_a_running_event_loop() -> None:
    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer())
    policy = ConsensusPolicy(n=4, checker=C)
    problem = gen.problems()[1]
    expected = policy.run(problem, gen, 0)

    async def caller():
        return policy.run(problem, gen, 0)  # a sync caller inside async code (a notebook cell)

    assert asyncio.run(caller()) == expected
    assert run_sync(policy.arun(problem, as_async(gen), 0)) == expected


def test_concurrency_is_validated_naming_the_key(tmp_path: Path) -> None:
    from deepprune.online.settings import check_config

    gen = ReplayGenerator(small_traces(), tokenizer=WhitespaceTokenizer())
    with pytest.raises(ValueError, match="concurrency=0 is invalid"):
        run_online(gen.problems(), gen, ConsensusPolicy(n=4), tmp_path, concurrency=0)
    with pytest.raises(ValueError, match="concurrency=0 is invalid"):
        check_config(compose_online("concurrency=0"))
    assert compose_online().concurrency == 1


def test_prompt_token_ids_in_problem_meta_are_the_prompt(tiny_qwen3_dir: Path) -> None:
    from transformers import AutoTokenizer

    from deepprune.online.generators.hf import DEFAULT_PROMPT_TEMPLATE, build_prompt_ids, problem_prompt_ids
    from deepprune.sources import Problem

    tok = AutoTokenizer.from_pretrained(str(tiny_qwen3_dir))
    plain = Problem("p", "What is 2 + 2?")
    templated = problem_prompt_ids(tok, plain, DEFAULT_PROMPT_TEMPLATE, None, True)
    assert templated == build_prompt_ids(tok, "What is 2 + 2?") and len(templated) > 5
    given = Problem("p", "", meta={"prompt_token_ids": [5, 6, 7]})
    assert problem_prompt_ids(tok, given, DEFAULT_PROMPT_TEMPLATE, None, True) == [5, 6, 7]
    for bad in ([], [1, -2], "5 6", [1.5], [True]):
        with pytest.raises(ValueError, match="p: meta.prompt_token_ids must be a non-empty list of token ids"):
            problem_prompt_ids(tok, Problem("p", "", meta={"prompt_token_ids": bad}), "{question}", None, True)


def test_deepconf_at_concurrency_3_equals_its_sequential_run(tmp_path: Path) -> None:
    from deepprune.online.policies import DeepConfPolicy
    from deepprune.traces import Trace

    rng = np.random.default_rng(3)
    traces = []
    for p in range(5):
        for i in range(10):
            n = int(rng.integers(6, 30))
            text = " ".join(f"p{p}w{i}_{j}" for j in range(n))
            confs = [float(c) for c in rng.uniform(0.5, 6.0, size=n)]
            answer = str(rng.choice(["1", "2", "3"], p=[0.5, 0.3, 0.2]))
            traces.append(Trace(f"q{p}", text, sample_id=i, answer=answer, gold="1", token_confidences=confs))
    outs = {}
    for c in (1, 3):
        gen = ReplayGenerator(traces, tokenizer=WhitespaceTokenizer())
        policy = DeepConfPolicy(n=10, warmup=3, percentile=50, window=4, checker=C)
        outs[c] = run_online(gen.problems(), gen, policy, tmp_path / str(c), ConsensusPolicy(n=10, checker=C),
                             seed=4, checker=C, orders=2, concurrency=c)  # fmt: skip
    assert by_run(tmp_path / "3") == by_run(tmp_path / "1") and outs[3] == outs[1]
    stopped = [len(r["extra"]["stopped"]) for r in by_run(tmp_path / "1").values()]
    assert sum(stopped) > 0  # the early stop did happen
