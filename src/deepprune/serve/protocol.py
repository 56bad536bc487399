"""The OpenAI chat-completions wire format of ``python -m deepprune.serve``: request checks and response bodies.

:func:`parse_request` turns a JSON body into a :class:`CompletionRequest` or raises :class:`RequestError` naming
the offending field (the server answers 400 with OpenAI's error body, ``error.param`` = the field) before any
generation starts. :func:`completion_body` builds the response: one choice whose assistant message is the voted
answer, ``usage`` with every generated token and the judge's cost apart, and a ``deepprune`` object (clusters,
pruned traces, finishers, the finish rule, per-trace token counts). Nothing here imports the engine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepprune.validation import check_int_at_least, check_number_in, check_probability

__all__ = [
    "POLICIES",
    "POLICY_FIELDS",
    "CompletionRequest",
    "RequestError",
    "parse_request",
    "error_body",
    "completion_body",
    "saved_tokens_estimate",
]

#: request ``policy`` -> the server's ``policies`` entry it runs (deepconf is DeepConf-low, the paper's baseline)
POLICIES = {
    "deepprune": "deepprune",
    "cons": "cons",
    "deepconf": "deepconf_low",
    "deepconf_low": "deepconf_low",
    "deepconf_high": "deepconf_high",
}

#: per-request settings each policy accepts (extra fields of the request body), and their checks
POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "deepprune": ("tau", "max_clusters", "k1", "k2", "k3"),
    "cons": (),
    "deepconf_low": ("warmup", "window", "percentile"),
    "deepconf_high": ("warmup", "window", "percentile"),
}

#: OpenAI fields that are accepted and have no effect here (bookkeeping fields of the client)
_IGNORED = ("user", "metadata", "store", "service_tier", "stream_options", "parallel_tool_calls")
#: OpenAI sampling fields that must equal the server's generator settings when given (one engine, one sampler)
_SERVER_FIXED = ("temperature", "top_p")
_ROLES = ("system", "developer", "user", "assistant")


class RequestError(ValueError):
    """A request the server refuses before any generation: ``param`` is the field, ``status`` the HTTP code."""

    def __init__(self, param: str | None, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.param = param
        self.status = status
        self.kind = kind


@dataclass
class CompletionRequest:
    """A checked chat-completion request: what to generate and which policy prunes it."""

    messages: list[dict[str, str]]
    n: int
    policy: str  # key of the server's policies (POLICIES values)
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # per-request policy settings (POLICY_FIELDS)
    max_tokens: int | None = None


def _check(param: str, check: Any, *args: Any) -> Any:
    try:
        return check(param, *args)
    except ValueError as err:
        raise RequestError(param, str(err)) from None


def _message_text(i: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise RequestError(f"messages[{i}].content", "only text content parts are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"messages[{i}].content", "content must be a string or a list of text parts")


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RequestError("messages", "messages must be a non-empty list of {role, content} objects")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise RequestError(f"messages[{i}]", "each message must be an object with role and content")
        role = message.get("role")
        if role not in _ROLES:
            raise RequestError(f"messages[{i}].role", f"role={role!r} is invalid: one of {', '.join(_ROLES)}")
        role = "system" if role == "developer" else role  # OpenAI's newer name for the system message
        out.append({"role": role, "content": _message_text(i, message.get("content"))})
    if out[-1]["role"] != "user":
        raise RequestError("messages", "the last message must be the user's (the problem the traces answer)")
    return out


def parse_request(
    body: Any,
    model_names: Sequence[str],
    defaults: Mapping[str, Any],
    server: Mapping[str, Any],
) -> CompletionRequest:
    """Check a chat-completions body against the server's limits; every refusal names its field.

    ``defaults``: ``n``, ``policy`` (a :data:`POLICIES` key). ``server``: ``max_n``, ``max_tokens`` (the per-trace
    budget) and the fixed sampling settings (``temperature``, ``top_p``) a request may repeat but not change.
    """
    if not isinstance(body, Mapping):
        raise RequestError(None, "the request body must be a JSON object")
    model = body.get("model")
    if model not in model_names:
        raise RequestError("model", f"model={model!r} is not served here: one of {', '.join(model_names)}")
    messages = _messages(body.get("messages"))
    if body.get("stream"):
        raise RequestError("stream", "stream=true is not supported: the voted answer exists only at the end")
    n = _check("n", check_int_at_least, body.get("n", defaults["n"]), 1)
    if n > int(server["max_n"]):
        raise RequestError("n", f"n={n} is invalid: `n` must be at most {server['max_n']} on this server")
    name = body.get("policy", defaults["policy"])
    if name not in POLICIES:
        raise RequestError("policy", f"policy={name!r} is invalid: one of {', '.join(POLICIES)}")
    policy = POLICIES[name]
    seed = None if body.get("seed") is None else _check("seed", check_int_at_least, body["seed"], 0)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        max_tokens = _check(key, check_int_at_least, max_tokens, 1)
        if max_tokens != int(server["max_tokens"]):
            raise RequestError(
                key, f"{key}={max_tokens} is invalid: this server generates up to {server['max_tokens']} tokens per "
                "trace (its generator.max_tokens); omit it or send that value",
            )  # fmt: skip
    for key in _SERVER_FIXED:
        if body.get(key) is not None:
            value = _check(key, check_number_in, body[key], 0.0, 2.0)
            if abs(value - float(server[key])) > 1e-9:
                raise RequestError(key, f"{key}={value:g} is invalid: the server samples with {key}={server[key]:g}")
    settings = _policy_settings(body, policy, n)
    known = {"model", "messages", "stream", "n", "policy", "seed", "max_tokens", "max_completion_tokens"}
    known |= set(_SERVER_FIXED) | set(_IGNORED) | set(POLICY_FIELDS[policy])  # a null field: the server's value
    unknown = sorted(set(body) - known)
    if unknown:
        of_other_policy = unknown[0] in {k for fields in POLICY_FIELDS.values() for k in fields}
        why = f"does not apply to policy={name!r}" if of_other_policy else "is not supported by this server"
        raise RequestError(unknown[0], f"{unknown[0]} {why}")
    return CompletionRequest(messages, n, policy, seed=seed, settings=settings, max_tokens=max_tokens)


def _policy_settings(body: Mapping[str, Any], policy: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in POLICY_FIELDS[policy]:
        if body.get(key) is None:
            continue
        if key == "tau":
            out[key] = _check(key, check_probability, body[key])
        elif key == "percentile":
            out[key] = _check(key, check_number_in, body[key], 0.0, 100.0)
        else:
            out[key] = _check(key, check_int_at_least, body[key], 1)
    if "warmup" in out and out["warmup"] > n:
        raise RequestError("warmup", f"warmup={out['warmup']} is invalid: at most n={n} traces can warm up")
    return out


def error_body(err: RequestError) -> dict[str, Any]:
    """OpenAI's error object (the ``openai`` client reads ``message``, ``type``, ``param`` and ``code``)."""
    return {"error": {"message": str(err), "type": err.kind, "param": err.param, "code": err.status}}


def completion_body(
    model: str,
    answer: str | None,
    prompt_tokens: int,
    outcome: Mapping[str, Any],
    traces: Sequence[Mapping[str, Any]],
    saved_estimate: int,
    seed: int,
) -> dict[str, Any]:
    """The chat-completion response of one request (see the package docstring for each field).

    ``outcome``: a :class:`deepprune.online.accounting.ProblemOutcome` as a dict; ``traces``: per trace
    ``index``, ``tokens``, ``finished``, ``answer``.
    """
    generated = int(outcome["prefix_tokens"]) + int(outcome["continuation_tokens"])
    clusters = outcome.get("clusters")
    finishers = list(outcome.get("finishers") or [])
    deepprune = {
        "policy": outcome["policy"],
        "n": outcome["n"],
        "seed": seed,
        "answer": answer,
        "voters": outcome.get("voters", 0),
        "clusters": clusters,
        "cluster_sizes": None if clusters is None else [len(c) for c in clusters],
        "pruned": list(outcome.get("pruned") or []),
        "finishers": finishers,
        "stopped": sorted(t["index"] for t in traces if not t["finished"]),
        "finish_rule": (outcome.get("extra") or {}).get("finish_rule"),
        "prefix_tokens": int(outcome["prefix_tokens"]),
        "continuation_tokens": int(outcome["continuation_tokens"]),
        "tokens_saved_estimate": int(saved_estimate),
        "traces": [dict(t) for t in traces],
    }
    extra = outcome.get("extra") or {}
    if "threshold" in extra:  # DeepConf
        deepprune["threshold"] = extra["threshold"]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer if answer is not None else ""},
                # "length": no trace finished within max_tokens, so there is no voted answer
                "finish_reason": "stop" if any(t["finished"] for t in traces) else "length",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": generated,
            "total_tokens": int(prompt_tokens) + generated,
            "judge_calls": int(outcome.get("judge_calls", 0)),
            "judge_input_tokens": int(outcome.get("judge_input_tokens", 0)),
        },
        "deepprune": deepprune,
    }


def saved_tokens_estimate(traces: Sequence[Mapping[str, Any]]) -> int:
    """Tokens saved against cons@N on the same request: each trace that did not finish would, under cons@N, have
    run to the mean length of the traces that did; it generated only its prefix. 0 when nothing finished."""
    done = [int(t["tokens"]) for t in traces if t["finished"]]
    if not done:
        return 0
    full = sum(done) / len(done)
    return int(round(sum(max(0.0, full - int(t["tokens"])) for t in traces if not t["finished"])))
