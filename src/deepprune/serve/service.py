"""What ``python -m deepprune.serve`` runs per request: prompt, policy, the engine's traces, the response body.

A :class:`Service` owns one generator engine (``generator`` group: vLLM's AsyncLLM by default) and one judge
(``judge`` group), shared by every request, and builds a fresh policy per request from the ``policies`` configs
(``policy=deepprune|cons|deepconf`` and its settings come in the request). :meth:`Service.check` does every check
that needs the model (the prompt's length under the chat template, the policy's own settings) before anything is
generated; :meth:`Service.complete` runs the policy as a coroutine on the shared engine, so requests in flight
share its batches, and cancelling it aborts every engine request of its traces.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from deepprune.online.generators.base import TraceState, as_async, problem_seed
from deepprune.online.generators.hf import PROMPT_IDS_KEY
from deepprune.runtime import get_logger
from deepprune.serve.protocol import CompletionRequest, RequestError, completion_body, parse_request
from deepprune.serve.protocol import saved_tokens_estimate as _saved
from deepprune.sources import Problem

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["Checked", "PolicyFactory", "Service", "prompt_ids"]

log = get_logger("deepprune.serve")


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The generation prompt of a chat: the tokenizer's chat template with the assistant turn opened (as vLLM's
    own server does); without a template, the contents joined by blank lines."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer("\n\n".join(m["content"] for m in messages))["input_ids"])


class PolicyFactory:
    """A policy per request from the server's config: the ``policies`` entry, ``n``, and the request's settings.

    The root config is copied and the entry becomes its ``policy``, so interpolations that follow the policy
    (the aggregation's ``${oc.select:policy.k2,...}``, ``${n}``, ``${tau}``) see the request's values. The judge is
    the server's one instance, never rebuilt.
    """

    def __init__(self, cfg: DictConfig, judge: Any) -> None:
        self.cfg = cfg
        self.judge = judge
        self.names = tuple(cfg.policies.keys())

    def build(self, name: str, n: int, settings: dict[str, Any]) -> Any:
        from hydra.utils import instantiate
        from omegaconf import open_dict

        cfg = copy.deepcopy(self.cfg)
        with open_dict(cfg):
            cfg.n = n
            if "tau" in settings:
                cfg.tau = settings["tau"]
            node = cfg.policies[name]
            for key, value in settings.items():
                if key != "tau":
                    node[key] = value
            cfg.policy = node
        if "judge" in cfg.policy:
            return instantiate(cfg.policy, judge=self.judge)
        return instantiate(cfg.policy)


@dataclass
class Checked:
    """A request that passed every check, with what generation needs."""

    request: CompletionRequest
    policy: Any
    prompt: list[int]
    seed: int
    aborted_traces: int = 0  # set when the request was cancelled: traces still generating, aborted in the engine


def _trace_key(state: TraceState) -> int:
    """Which trace a state is: its handle, shared by a judge's snapshot; the state itself for a backend without."""
    return id(state.handle) if state.handle is not None else id(state)


class _Recorder:
    """One request's view of the shared async generator: forwards everything and keeps the states it started."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.states: list[TraceState] = []
        self._released: set[int] = set()  # _trace_key of the traces already aborted (pruned by the policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["generator"], name)

    async def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        states = await self.generator.start(problem, n, seed)
        self.states.extend(states)
        return states

    async def advance(self, states: list[TraceState], until: Any = None) -> None:
        await self.generator.advance(states, until)

    async def release(self, states: list[TraceState]) -> None:
        self._released.update(_trace_key(s) for s in states)
        await self.generator.release(states)

    async def release_all(self) -> int:
        """Abort whatever of this request's traces is still generating (neither finished nor pruned by the
        policy); how many that was."""
        open_states = [s for s in self.states if not s.finished and _trace_key(s) not in self._released]
        if open_states:
            await self.release(open_states)
        return len(open_states)

    def close(self) -> None:  # the server owns the engine
        pass


class Service:
    """The engine, the judge and the policies behind the HTTP API (see the module docstring)."""

    def __init__(
        self,
        generator: Any,
        judge: Any,
        policies: PolicyFactory,
        defaults: dict[str, Any],
        max_n: int,
        seed: int = 0,
        served_model_name: str | None = None,
    ) -> None:
        self.generator = generator
        self.agen = as_async(generator)
        self.judge = judge
        self.policies = policies
        self.defaults = dict(defaults)
        self.max_n = int(max_n)
        self.seed = int(seed)
        self.tokenizer = generator.tokenizer
        self.max_model_len = int(generator.max_model_len)
        self.model_names = [served_model_name or generator.model_name]
        self._limits = {
            "max_n": self.max_n,
            "max_tokens": int(generator.max_tokens),
            "temperature": float(generator.temperature),
            "top_p": float(generator.top_p),
        }
        self._numbers = itertools.count()
        self._closed = False

    def check(self, body: Any) -> Checked:
        """Every check, in the order a client can fix them; raises :class:`RequestError` naming the field."""
        request = parse_request(body, self.model_names, self.defaults, self._limits)
        if request.policy not in self.policies.names:
            raise RequestError("policy", f"policy={request.policy!r} is not configured on this server (policies)")
        try:
            prompt = prompt_ids(self.tokenizer, request.messages)
        except Exception as err:  # the model's chat template refuses these messages (e.g. roles must alternate)
            raise RequestError("messages", f"messages: the chat template refused them: {err}") from None
        if len(prompt) >= self.max_model_len:
            raise RequestError(
                "messages", f"messages: the prompt has {len(prompt)} tokens; this model allows {self.max_model_len} "
                "(prompt and generation together, generator.engine.max_model_len)",
            )  # fmt: skip
        try:
            policy = self.policies.build(request.policy, request.n, request.settings)
        except ValueError as err:  # the policy's own checks (e.g. K values), named as the request names them
            text = str(err)
            param = next((k for k in request.settings if f"{k}=" in text), None)
            raise RequestError(param, text) from None
        number = next(self._numbers)
        seed = request.seed if request.seed is not None else problem_seed(self.seed, f"request-{number}")
        return Checked(request=request, policy=policy, prompt=prompt, seed=seed)

    async def complete(self, checked: Checked) -> tuple[dict[str, Any], int]:
        """Run the request's policy on the shared engine; the response body and the saved-token estimate."""
        request = checked.request
        question = request.messages[-1]["content"]
        # the exact prompt the request was checked with: the chat template of all its messages, nothing appended
        problem = Problem("request", question, meta={PROMPT_IDS_KEY: list(checked.prompt)})
        view = _Recorder(self.agen)
        try:
            outcome = await checked.policy.arun(problem, view, checked.seed)
        except asyncio.CancelledError:
            # the client left or shutdown ran out of grace: abort every trace of this request in one engine call
            # (cancellation alone unwinds the traces' streams one by one)
            checked.aborted_traces = await asyncio.shield(view.release_all())
            raise
        traces = [
            {"index": s.index, "tokens": s.num_tokens, "finished": bool(s.finished), "answer": s.answer}
            for s in view.states
        ]
        saved = _saved(traces)
        body = completion_body(
            self.model_names[0], outcome.answer, len(checked.prompt), asdict(outcome), traces, saved, checked.seed
        )
        return body, saved

    def engine_error(self) -> str | None:
        """Why the generation engine can serve no more requests, or None while it can. vLLM's AsyncLLM reports
        ``errored`` once its engine core process has died; it does not come back, so the server says so (503 from
        ``/health`` and to every request) until someone restarts it."""
        engine = getattr(self.generator, "engine", None)
        if engine is None:
            return None
        try:
            errored = bool(getattr(engine, "errored", False))
        except Exception:  # noqa: BLE001 - an engine that cannot even say is no engine to send work to
            errored = True
        if errored:
            return "the generation engine has died (its engine core process exited; see the server log): restart it"
        return None

    def engine_counts(self) -> dict[str, int]:
        """What the engine itself reports: requests not finished now, and the generator's totals over its engine
        requests (``generated_tokens`` counts the token ids the engine streamed; ``requests``, ``aborted``)."""
        counts = {k: int(v) for k, v in (getattr(self.generator, "stats", None) or {}).items()}
        unfinished = getattr(getattr(self.generator, "engine", None), "get_num_unfinished_requests", None)
        if callable(unfinished):
            counts["unfinished_requests"] = int(unfinished())
        return counts

    def close(self) -> None:
        """Stop the engine (and a judge that owns one); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.generator.close()
        finally:
            close_judge = getattr(self.judge, "close", None)
            if callable(close_judge):
                close_judge()
