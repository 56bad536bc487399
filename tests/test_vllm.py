"""A real vLLM engine (the CPU build in CI) on the tiny Qwen3: abort, token accounting, confidences, LoRA judge.

One AsyncLLM engine serves the generator tests of this module (engine start dominates the run time); the last
generator test closes it and checks that no engine process outlives `close()`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("vllm")
psutil = pytest.importorskip("psutil")

from deepprune.sources import Problem  # noqa: E402
from deepprune.truncation import TokenPrefix  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

PROBLEM = Problem("p1", "What is 2 + 2?", gold="4")
MAX_TOKENS = 40


@pytest.fixture(scope="module", autouse=True)
def small_kv_cache():
    old = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = old or "1"
    yield
    if old is None:
        os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)


@pytest.fixture(scope="module")
def vllm_gen(tiny_qwen3_dir: Path):
    from deepprune.online.generators.vllm import VLLMGenerator
    from deepprune.vllm_engine import EngineSettings

    engine = EngineSettings(dtype="float32", max_model_len=512, enable_prefix_caching=True)
    gen = VLLMGenerator(model=tiny_qwen3_dir, max_tokens=MAX_TOKENS, temperature=1.0, top_p=1.0, engine=engine)
    yield gen
    gen.close()


def _engine_children() -> list[psutil.Process]:
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            # the answer checker's math-verify worker (started by earlier tests) is not part of the engine
            if child.status() != psutil.STATUS_ZOMBIE and not any(
                s in cmdline for s in ("resource_tracker", "deepprune.answers")
            ):
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_abort_stops_generation_and_continuation_adds_up(vllm_gen) -> None:
    # a runner-sized seed (crc32 scale): continuation seeds then exceed int64 and must be folded into range
    states = vllm_gen.start(PROBLEM, 3, seed=2**32 + 11)
    vllm_gen.advance(states, until=TokenPrefix(8, tokenizer=None).reached)
    first = [r for r in vllm_gen.requests if r["request_id"].endswith("-s0")][-3:]
    for s, rec in zip(states, sorted(first, key=lambda r: r["index"])):
        # aborted as soon as the prefix was complete: far below the budget, and what the engine streamed
        assert rec["aborted"] and rec["finish_reason"] is None
        assert 8 <= s.num_tokens < MAX_TOKENS and rec["generated_tokens"] == s.num_tokens
        assert len(s.token_confidences) == s.num_tokens and not s.finished
    assert vllm_gen.engine.get_num_unfinished_requests() == 0  # the engine dropped the aborted requests

    paused = [len(s.handle.ids) for s in states]
    vllm_gen.release(states[1:])
    vllm_gen.advance(states)  # only trace 0 continues, as a new request with the prefix as prompt
    cont = vllm_gen.requests[-1]
    assert cont["index"] == 0 and cont["request_id"].endswith("-s1") and cont["finish_reason"] in ("stop", "length")
    assert cont["prompt_tokens"] == len(states[0].handle.prompt) + paused[0]
    assert states[0].finished and states[0].num_tokens == paused[0] + cont["generated_tokens"]
    assert states[0].num_tokens == len(states[0].handle.ids) == len(states[0].token_confidences)
    assert [s.num_tokens for s in states[1:]] == paused[1:]  # released traces never grow again


def test_engine_stream_aborted_mid_request_stops_growing(vllm_gen) -> None:
    """Drive the engine directly: after abort() the request ends and no further tokens arrive."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    engine = vllm_gen.engine
    params = SamplingParams(seed=3, max_tokens=200, output_kind=RequestOutputKind.CUMULATIVE, ignore_eos=True)

    async def run() -> tuple[int, list]:
        seen, after = 0, []
        stream = engine.generate(TokensPrompt(prompt_token_ids=[5, 6, 7, 8]), params, request_id="direct-abort")
        async for out in stream:
            if seen >= 5:
                after.append((len(out.outputs[0].token_ids), out.finished, out.outputs[0].finish_reason))
                continue
            seen = len(out.outputs[0].token_ids)
            if seen >= 5:
                await engine.abort("direct-abort")
        return seen, after

    seen, after = vllm_gen._loop.run(run())
    assert 5 <= seen < 200
    # at most a final "aborted" message follows, never a longer output
    assert all(n <= seen + 1 for n, _, _ in after)
    assert engine.get_num_unfinished_requests() == 0


def test_token_counts_and_text_match_an_unpaused_engine_run(vllm_gen) -> None:
    """A trace generated in one go equals the engine's own output for the same seed: ids, count, text."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    states = vllm_gen.start(PROBLEM, 2, seed=5)
    vllm_gen.advance(states)
    params = SamplingParams(seed=states[1].seed, temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS)

    async def run():
        last = None
        async for out in vllm_gen.engine.generate(
            TokensPrompt(prompt_token_ids=states[1].handle.prompt), params, request_id="reference"
        ):
            last = out
        return last.outputs[0]

    ref = vllm_gen._loop.run(run())
    s = states[1]
    assert len(ref.token_ids) == s.num_tokens
    assert list(ref.token_ids) == states[1].handle.ids
    assert s.text == vllm_gen.tokenizer.decode(list(ref.token_ids), skip_special_tokens=True)
    assert s.finished and s.answer is None or isinstance(s.answer, str)


def test_confidences_match_hf_top20(vllm_gen, tiny_qwen3_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    states = vllm_gen.start(PROBLEM, 1, seed=9)
    vllm_gen.advance(states, until=TokenPrefix(6, tokenizer=None).reached)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32).eval()
    ids = states[0].handle.prompt + states[0].handle.ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    p = len(states[0].handle.prompt)
    top = logits[p - 1 : len(ids) - 1].log_softmax(-1).topk(20, dim=-1).values
    assert states[0].token_confidences == pytest.approx((-top.mean(-1)).tolist(), abs=2e-2)


def test_two_problems_in_flight_match_their_sequential_runs(vllm_gen) -> None:
    """The async core on one engine: two problems' traces stream together (as_async, policy.arun) and each gets
    exactly the tokens it gets alone; releasing one problem's traces mid-stream leaves the other's untouched."""
    import asyncio

    from deepprune.online.generators.base import as_async
    from deepprune.online.policies import ConsensusPolicy

    other = Problem("p2", "Name a prime number larger than 10.", gold="11")
    cons = ConsensusPolicy(n=3)
    alone = {p.problem_id: cons.run(p, vllm_gen, 21) for p in (PROBLEM, other)}
    alone_ids = {}
    for p in (PROBLEM, other):
        states = vllm_gen.start(p, 3, 21)
        vllm_gen.advance(states)
        alone_ids[p.problem_id] = [list(s.handle.ids) for s in states]
    agen = as_async(vllm_gen)
    first_request = len(vllm_gen.requests)

    async def together():
        return await asyncio.gather(cons.arun(PROBLEM, agen, 21), cons.arun(other, agen, 21))

    both = asyncio.run(together())
    assert [o.tokens for o in both] == [alone[p].tokens for p in ("p1", "p2")]
    assert [o.answer for o in both] == [alone[p].answer for p in ("p1", "p2")]
    streamed = vllm_gen.requests[first_request:]
    # the two problems' requests overlapped in the engine, under distinct request ids
    assert len({r["request_id"] for r in streamed}) == len(streamed) == 6
    assert len({r["request_id"].split("-")[0] for r in streamed}) == 2

    async def release_one_keep_the_other():
        kept = await agen.start(PROBLEM, 3, 21)
        dropped = await agen.start(other, 3, 21)
        keep_task = asyncio.create_task(agen.advance(kept))
        drop_task = asyncio.create_task(agen.advance(dropped))
        while sum(s.num_tokens for s in dropped) < 3:  # mid-stream
            await asyncio.sleep(0.005)
        await agen.release(dropped)
        await asyncio.gather(keep_task, drop_task)
        counts = [s.num_tokens for s in dropped]
        await agen.advance(dropped)  # released: never advanced again
        return kept, dropped, counts

    kept, dropped, counts = asyncio.run(release_one_keep_the_other())
    assert [s.handle.ids for s in kept] == alone_ids["p1"] and all(s.finished for s in kept)
    assert any(not s.finished for s in dropped) and [s.num_tokens for s in dropped] == counts
    assert all(s.num_tokens < len(ids) for s, ids in zip(dropped, alone_ids["p2"]) if not s.finished)
    assert vllm_gen.engine.get_num_unfinished_requests() == 0


def test_cancelled_advance_leaves_no_request_and_given_prompt_ids_are_used(vllm_gen) -> None:
    """A server's client that goes away: cancelling the task awaiting aadvance aborts its requests before the
    cancellation returns. A problem's meta prompt_token_ids are the prompt, as given."""
    import asyncio

    from deepprune.online.generators.base import as_async

    agen = as_async(vllm_gen)
    prompt = vllm_gen.start(PROBLEM, 1, 0)[0].handle.prompt[:-2]  # any token ids will do
    given = Problem("p3", "", meta={"prompt_token_ids": prompt})

    async def cancel_mid_stream():
        states = await agen.start(given, 3, 5)
        task = asyncio.create_task(agen.advance(states))
        while sum(s.num_tokens for s in states) < 2:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return states, vllm_gen.engine.get_num_unfinished_requests()

    states, running = asyncio.run(cancel_mid_stream())
    assert running == 0 and any(not s.finished for s in states)
    assert all(s.handle.prompt == prompt and s.handle.inflight is None for s in states)
    assert [r["prompt_tokens"] for s in states for r in s.handle.requests] == [len(prompt)] * 3
    counts = [s.num_tokens for s in states]
    vllm_gen.advance(states)  # cancelled, not released: the traces continue from where they stopped
    assert all(s.finished for s in states) and all(s.num_tokens >= c for s, c in zip(states, counts))


def test_close_leaves_no_engine_process(vllm_gen) -> None:
    engine_pids = {p.pid for p in _engine_children()}
    assert engine_pids, "the AsyncLLM engine core runs in a child process"
    vllm_gen.close()
    vllm_gen.close()  # idempotent
    assert _engine_children() == []
    with pytest.raises(RuntimeError, match="closed"):
        vllm_gen.advance(vllm_gen.start(PROBLEM, 1, seed=0))


def test_vllm_lora_judge_matches_hf(tiny_lora_head, tmp_path: Path) -> None:
    import torch

    from deepprune.judge.export import export_head
    from deepprune.judge.scorers import load_scorer
    from deepprune.judge.vllm_scorer import VLLMJudgeScorer
    from deepprune.online.generators.base import TraceState
    from deepprune.online.judges import exported_judge
    from deepprune.vllm_engine import EngineSettings

    torch.manual_seed(0)
    for name, param in tiny_lora_head.named_parameters():
        if "lora_B" in name:  # a fresh adapter is a no-op; make it matter
            param.data.normal_(0.0, 0.3)
    export = export_head(tiny_lora_head, tmp_path / "judge")
    pairs = [
        ("The answer is 4.", "So we get 4."),
        ("Wait, 2 + 2 = 5? No.", "Thus x = 3 and the answer is 7"),
        ("", "Since the sum is 10"),
    ]
    hf = load_scorer(export, dtype="float32").score(pairs)
    base = load_scorer(export, dtype="float32").head
    with base.backbone.disable_adapter():
        base_scores = base.p_same(pairs).numpy()
    assert abs(hf - base_scores).max() > 1e-3  # the adapter changes the scores
    old = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process engine: starts in seconds
    # judge=vllm: the one loader's vLLM backend behind the same online judge as judge=exported
    online = exported_judge(
        export, backend="vllm", engine=EngineSettings(dtype="float32", max_model_len=1024), max_lora_rank=8
    )
    try:
        judge = online.scorer
        assert isinstance(judge, VLLMJudgeScorer)
        assert judge.encode(*pairs[0]) == tiny_lora_head.encode(*pairs[0])
        got = judge.score(pairs)
        assert judge.calls == 3
        # the online face scores both orders and averages them, as judge=exported does
        a, b = TraceState(0, 0, text=pairs[1][0]), TraceState(1, 1, text=pairs[1][1])
        both = judge.score([pairs[1], pairs[1][::-1]])
        assert online.score([(a, b)]) == pytest.approx([both.mean()], abs=1e-9)
    finally:
        online.close()
        if old is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = old
    assert ((got >= 0) & (got <= 1)).all()
    assert got == pytest.approx(hf, abs=5e-3)


def test_two_way_softmax_and_export_checks(tmp_path: Path) -> None:
    import json
    import math

    from deepprune.judge.vllm_scorer import read_export, two_way_softmax

    assert two_way_softmax(math.log(0.2), math.log(0.6)) == pytest.approx(0.75)
    assert two_way_softmax(-1e9, 0.0) == pytest.approx(1.0) and two_way_softmax(0.0, -1e9) == pytest.approx(0.0)
    assert two_way_softmax(-3.0, -3.0) == 0.5
    with pytest.raises(FileNotFoundError, match="deepprune_judge.json"):
        read_export(tmp_path)
    (tmp_path / "deepprune_judge.json").write_text(json.dumps({"kind": "classifier"}))
    with pytest.raises(ValueError, match="generative"):
        read_export(tmp_path)
