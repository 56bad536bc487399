"""Prometheus counters of ``python -m deepprune.serve`` (``GET /metrics``, text exposition format 0.0.4).

One :class:`ServeMetrics` per app (no global registry, so tests and several apps in one process do not share
counts). Counters, labelled by policy where it applies:

- ``deepprune_requests_total{policy,status}``: finished requests by outcome (``ok``, ``disconnected``, ``error``),
  plus ``deepprune_rejected_requests_total{reason}`` (``invalid``: 400, ``overloaded``: 429, ``shutting_down`` and
  ``engine_dead``: 503);
- ``deepprune_generated_tokens_total{policy}``: every generated token (prefixes and continuations);
- ``deepprune_tokens_saved_total{policy}``: tokens saved against cons@N, estimated from the pruned traces'
  prefixes (:func:`deepprune.serve.protocol.saved_tokens_estimate`);
- ``deepprune_judge_calls_total`` and ``deepprune_judge_input_tokens_total`` (policy label);
- ``deepprune_aborted_traces_total{reason}``: traces still generating when their request was cancelled
  (``disconnected``, ``shutdown``), aborted in the engine;
- gauge ``deepprune_requests_in_flight``;
- what the engine reports (``engine`` argument of :meth:`ServeMetrics.render`): ``deepprune_engine_*_total``
  counters (token ids streamed by the engine, engine requests, aborted ones) and the gauge
  ``deepprune_engine_unfinished_requests``.

``deepprune_requests_total`` statuses: ``ok``, ``disconnected`` (the client left; its traces were aborted),
``aborted`` (cancelled by shutdown), ``error``.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["ServeMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "deepprune_requests_total": ("counter", "Chat-completion requests served, by policy and outcome."),
    "deepprune_rejected_requests_total": ("counter", "Requests refused before generation, by reason."),
    "deepprune_generated_tokens_total": ("counter", "Tokens generated (prefixes and continuations), by policy."),
    "deepprune_tokens_saved_total": ("counter", "Tokens saved against cons@N (estimated from pruned prefixes)."),
    "deepprune_judge_calls_total": ("counter", "Pair judgments made by the judge, by policy."),
    "deepprune_judge_input_tokens_total": ("counter", "Prefix tokens the judge read, by policy."),
    "deepprune_aborted_traces_total": ("counter", "Traces aborted mid-generation with their request, by reason."),
    "deepprune_requests_in_flight": ("gauge", "Chat-completion requests being generated now."),
}


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + inner + "}"


def _number(value: float) -> str:
    # exact integers for token counts (":g" would print 1.23457e+06)
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class ServeMetrics:
    """Counters and the in-flight gauge; :meth:`render` writes them in Prometheus text format."""

    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self.in_flight = 0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        if name not in _HELP or _HELP[name][0] != "counter":
            raise KeyError(f"unknown counter {name!r}")
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0.0) + float(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's value for exactly these labels (0 when never incremented)."""
        if name == "deepprune_requests_in_flight":
            return float(self.in_flight)
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def record_completion(self, policy: str, usage: dict, saved: int) -> None:
        """Count one served request from its response ``usage`` and saved-token estimate."""
        self.inc("deepprune_requests_total", policy=policy, status="ok")
        self.inc("deepprune_generated_tokens_total", usage["completion_tokens"], policy=policy)
        self.inc("deepprune_tokens_saved_total", saved, policy=policy)
        self.inc("deepprune_judge_calls_total", usage["judge_calls"], policy=policy)
        self.inc("deepprune_judge_input_tokens_total", usage["judge_input_tokens"], policy=policy)

    def render(self, engine: dict[str, int] | None = None) -> str:
        """Prometheus text; ``engine``: :meth:`deepprune.serve.service.Service.engine_counts`."""
        lines = []
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "gauge":
                lines.append(f"{name} {self.in_flight}")
                continue
            for labels, value in sorted(self._values.get(name, {}).items()):
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        for key, value in sorted((engine or {}).items()):
            kind = "gauge" if key == "unfinished_requests" else "counter"
            name = f"deepprune_engine_{key}" + ("_total" if kind == "counter" else "")
            lines += [f"# TYPE {name} {kind}", f"{name} {int(value)}"]
        return "\n".join(lines) + "\n"
