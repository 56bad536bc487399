"""An OpenAI-compatible DeepPrune server: ``python -m deepprune.serve`` (FastAPI + uvicorn, ``conf/serve.yaml``).

One generator engine (vLLM's AsyncLLM by default) and one judge serve every request; several requests are in
flight on the engine at once. ``POST /v1/chat/completions`` takes OpenAI's body; ``n`` is the number of parallel
traces, and the method comes in extra fields (``extra_body`` in the ``openai`` client), each defaulting to the
server's config:

- ``policy``: ``deepprune`` (the default), ``cons`` (cons@N: every trace finishes, majority vote) or ``deepconf``
  (DeepConf-low; ``deepconf_high`` too); ``seed`` (OpenAI's field) fixes every trace's sampling seed;
- DeepPrune: ``tau``, ``max_clusters`` (K), ``k1``, ``k2``, ``k3``; DeepConf: ``warmup``, ``window``, ``percentile``.

Every trace's prompt is the model's chat template of the request's ``messages`` (the last one the user's, the
assistant turn opened), as vLLM's own server builds it; temperature, top-p and the per-trace token budget are the
server's (``generator.*``).

The response has one choice: its assistant message is the voted final answer only (the extracted answer, e.g.
``42`` from ``\\boxed{42}``; an empty string when no trace gave one), not a trace. ``usage.completion_tokens``
counts every generated token of every trace (prefixes, continuations, pruned traces' prefixes);
``usage.prompt_tokens`` is the prompt once (as OpenAI counts it for ``n`` > 1); ``usage.judge_calls`` (pair
judgments) and ``usage.judge_input_tokens`` (prefix tokens the judge read) are the judge's cost, apart. The
``deepprune`` object: ``policy``, ``n``, ``seed``, ``answer``, ``clusters`` (trace indices per cluster, in opening
order) and ``cluster_sizes``, ``pruned`` (never clustered), ``finishers``, ``stopped`` (every trace that did not
finish), ``finish_rule``, ``prefix_tokens``, ``continuation_tokens``, ``tokens_saved_estimate`` (against cons@N)
and ``traces`` (per trace: ``index``, ``tokens``, ``finished``, ``answer``).

``GET /v1/models``, ``GET /health`` and ``GET /metrics`` (Prometheus text, :mod:`deepprune.serve.metrics`).
Modules: :mod:`~deepprune.serve.protocol` (wire format, request checks), :mod:`~deepprune.serve.service`
(engine, judge, policies), :mod:`~deepprune.serve.app` (routes, limits, disconnects, shutdown),
:mod:`~deepprune.serve.server` (config to uvicorn).
"""


def main() -> None:
    """Console script ``deepprune-serve``: the Hydra app in ``deepprune.serve.__main__``."""
    from deepprune.serve.__main__ import main as hydra_main

    hydra_main()
