"""The FastAPI app of ``python -m deepprune.serve``: routes, the in-flight limit, disconnects and shutdown.

``create_app(service, limits)`` wires a :class:`deepprune.serve.service.Service` (engine, judge, policies) to
``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health`` and ``GET /metrics``. Under stress:

- a request is checked completely (:meth:`Service.check`) before it takes a slot, so a bad one gets 400 naming the
  field and nothing is generated;
- at most ``limits.max_in_flight`` requests generate at once; the next one gets 429 (and, once shutdown began, 503)
  with OpenAI's error body and a ``Retry-After`` header;
- while a request generates, the handler polls ``request.is_disconnected()`` every ``limits.poll_s`` seconds; a
  client that went away cancels the policy's task, and cancellation aborts every engine request of its traces
  (vLLM aborts a request whose stream is cancelled; it does not notice a closed HTTP connection by itself);
- on shutdown (uvicorn's SIGTERM/SIGINT handling) new requests get 503, requests in flight may finish within
  uvicorn's ``timeout_graceful_shutdown`` (then they are cancelled, which aborts their traces), and the lifespan's
  end closes the service, which stops the engine processes;
- once the engine has died (vLLM's engine core process exited), the requests it was serving, ``/health`` and every
  later request get 503 ``engine_dead`` until the server is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from deepprune.runtime import get_logger
from deepprune.serve.metrics import CONTENT_TYPE, ServeMetrics
from deepprune.serve.protocol import RequestError, error_body

if TYPE_CHECKING:
    from deepprune.serve.service import Service

__all__ = ["Limits", "create_app"]

log = get_logger("deepprune.serve")


@dataclass
class Limits:
    """Server limits (``server:`` block of ``conf/serve.yaml``)."""

    max_in_flight: int = 4  # requests generating at once; past it: 429
    poll_s: float = 0.2  # how often a generating request checks that its client is still connected
    retry_after_s: int = 1  # Retry-After (seconds) of a 429/503


def create_app(service: Service, limits: Limits | None = None, metrics: ServeMetrics | None = None) -> FastAPI:
    """The app; ``service`` is closed when the app's lifespan ends."""
    limits = limits or Limits()
    metrics = metrics or ServeMetrics()
    state: dict[str, Any] = {"shutting_down": False, "started": time.time()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state["shutting_down"] = True
        log.info("shutting down: closing the engine (%d request(s) in flight)", metrics.in_flight)
        await asyncio.to_thread(service.close)

    app = FastAPI(title="deepprune", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.service = service
    # uvicorn runs the lifespan's exit only after the graceful drain: the server calls this when the signal arrives,
    # so requests on open connections get 503 and /health says so during the drain
    app.state.begin_shutdown = lambda: state.__setitem__("shutting_down", True)

    def refuse(err: RequestError, reason: str) -> JSONResponse:
        metrics.inc("deepprune_rejected_requests_total", reason=reason)
        headers = {"Retry-After": str(limits.retry_after_s)} if err.status in (429, 503) else None
        return JSONResponse(error_body(err), status_code=err.status, headers=headers)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        if state["shutting_down"]:
            err = RequestError(None, "the server is shutting down", 503, "server_shutting_down")
            return refuse(err, "shutting_down")
        dead = service.engine_error()
        if dead is not None:
            return refuse(RequestError(None, dead, 503, "engine_dead"), "engine_dead")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return refuse(RequestError(None, f"the request body is not JSON: {err}"), "invalid")
        try:
            checked = service.check(body)
        except RequestError as err:
            return refuse(err, "invalid")
        if metrics.in_flight >= limits.max_in_flight:
            err = RequestError(
                None, f"too many requests in flight ({limits.max_in_flight}, server.max_in_flight); retry later",
                429, "rate_limit_exceeded",
            )  # fmt: skip
            return refuse(err, "overloaded")
        metrics.in_flight += 1
        try:
            return await _generate(request, checked)
        finally:
            metrics.in_flight -= 1

    async def _generate(request: Request, checked: Any) -> Response:
        task = asyncio.create_task(service.complete(checked))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=limits.poll_s)
                if not task.done() and await request.is_disconnected():
                    log.info("client disconnected: aborting the %d trace(s) of its request", checked.request.n)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    metrics.inc("deepprune_requests_total", policy=checked.request.policy, status="disconnected")
                    metrics.inc("deepprune_aborted_traces_total", checked.aborted_traces, reason="disconnected")
                    return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
            body, saved = task.result()
        except asyncio.CancelledError:  # shutdown past its grace period: abort the traces, then let it unwind
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            metrics.inc("deepprune_requests_total", policy=checked.request.policy, status="aborted")
            metrics.inc("deepprune_aborted_traces_total", checked.aborted_traces, reason="shutdown")
            raise
        except RequestError as err:
            return refuse(err, "invalid")
        except Exception:
            log.exception("request failed")
            metrics.inc("deepprune_requests_total", policy=checked.request.policy, status="error")
            dead = service.engine_error()
            if dead is not None:  # the engine died under it: say so, as to the requests that follow
                err = RequestError(None, dead, 503, "engine_dead")
                return JSONResponse(error_body(err), status_code=503)
            err = RequestError(None, "generation failed (see the server log)", 500, "server_error")
            return JSONResponse(error_body(err), status_code=500)
        metrics.record_completion(checked.request.policy, body["usage"], saved)
        return JSONResponse(body)

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": int(state["started"]), "owned_by": "deepprune"}
                for name in service.model_names
            ],
        }

    @app.get("/health")
    async def health() -> Response:
        if state["shutting_down"]:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        dead = service.engine_error()
        if dead is not None:  # a liveness probe restarts the server: the engine does not come back by itself
            return JSONResponse({"status": "engine_dead", "error": dead}, status_code=503)
        return JSONResponse(
            {"status": "ok", "in_flight": metrics.in_flight, "max_in_flight": limits.max_in_flight,
             "engine": service.engine_counts()}
        )  # fmt: skip

    @app.get("/metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(metrics.render(service.engine_counts()), media_type=CONTENT_TYPE)

    return app
