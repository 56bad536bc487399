"""The server's wire format without an engine: request checks name the field, response bodies, the saved-token
estimate, Prometheus text, the composed `serve` config and its policies (built per request with the request's
settings), and which traces a cancelled request aborts."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from deepprune.runtime import CONF_DIR
from deepprune.serve.metrics import ServeMetrics
from deepprune.serve.protocol import RequestError, completion_body, parse_request, saved_tokens_estimate

MODELS = ["tiny"]
DEFAULTS = {"n": 4, "policy": "deepprune"}
SERVER = {"max_n": 8, "max_tokens": 64, "temperature": 0.6, "top_p": 0.95}
USER = [{"role": "user", "content": "What is 2 + 2?"}]


def parse(**body):
    return parse_request({"model": "tiny", "messages": USER, **body}, MODELS, DEFAULTS, SERVER)


def test_defaults_and_extra_fields() -> None:
    req = parse()
    assert (req.n, req.policy, req.seed, req.settings) == (4, "deepprune", None, {})
    req = parse(n=8, policy="deepconf", seed=7, warmup=2, percentile=50, temperature=0.6, user="me")
    assert (req.n, req.policy, req.seed, req.settings) == (8, "deepconf_low", 7, {"warmup": 2, "percentile": 50.0})
    req = parse(tau=0.25, k1=3, k2=2, k3=5, max_clusters=3, max_tokens=64)
    assert req.settings == {"tau": 0.25, "k1": 3, "k2": 2, "k3": 5, "max_clusters": 3}
    # content parts and the developer role (OpenAI's newer name for system)
    parts = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    req = parse_request({"model": "tiny", "messages": parts}, MODELS, DEFAULTS, SERVER)
    assert req.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "body, param, text",
    [
        ({"n": 0}, "n", "n=0 is invalid"),
        ({"n": 9}, "n", "at most 8"),
        ({"n": True}, "n", "n=True"),
        ({"policy": "greedy"}, "policy", "policy='greedy'"),
        ({"tau": 1.5}, "tau", "tau=1.5"),
        ({"tau": "high"}, "tau", "tau='high'"),
        ({"model": "gpt-4o"}, "model", "not served here: one of tiny"),
        ({"messages": []}, "messages", "non-empty"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages", "last message"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "robot"),
        ({"stream": True}, "stream", "not supported"),
        ({"temperature": 1.0}, "temperature", "temperature=0.6"),
        ({"max_tokens": 10}, "max_tokens", "up to 64"),
        ({"seed": -1}, "seed", "seed=-1"),
        ({"k2": 0}, "k2", "k2=0"),
        ({"policy": "cons", "tau": 0.5}, "tau", "does not apply to policy='cons'"),
        ({"logit_bias": {}}, "logit_bias", "not supported"),
        ({"policy": "deepconf", "warmup": 5}, "warmup", "at most n=4"),
    ],
)
def test_bad_requests_name_the_field(body: dict, param: str, text: str) -> None:
    with pytest.raises(RequestError, match=text) as err:
        parse(**body)
    assert err.value.param == param and err.value.status == 400


def test_null_policy_fields_take_the_server_values() -> None:
    assert parse(policy="deepprune", tau=None, k2=None).settings == {}  # null: the server's default, not a 400
    with pytest.raises(RequestError) as err:
        parse(policy="deepprune", foo=1, warmup=2)
    assert err.value.param == "foo" and "is not supported by this server" in str(err.value)


def test_completion_body_counts_every_token_and_the_judge_apart() -> None:
    outcome = {
        "policy": "deepprune", "n": 4, "answer": "4", "prefix_tokens": 40, "continuation_tokens": 25,
        "judge_calls": 6, "judge_input_tokens": 480, "clusters": [[0, 2], [1], [3]], "pruned": [],
        "finishers": [0, 2], "voters": 2, "extra": {"finish_rule": "largest_cluster"},
    }  # fmt: skip
    traces = [
        {"index": 0, "tokens": 22, "finished": True, "answer": "4"},
        {"index": 1, "tokens": 10, "finished": False, "answer": None},
        {"index": 2, "tokens": 23, "finished": True, "answer": "4"},
        {"index": 3, "tokens": 10, "finished": False, "answer": None},
    ]
    saved = saved_tokens_estimate(traces)
    assert saved == 2 * (22.5 - 10) == 25
    body = completion_body("tiny", "4", 17, outcome, traces, saved, seed=3)
    assert [c["message"] for c in body["choices"]] == [{"role": "assistant", "content": "4"}]
    assert body["usage"] == {
        "prompt_tokens": 17, "completion_tokens": 65, "total_tokens": 82, "judge_calls": 6, "judge_input_tokens": 480
    }  # fmt: skip
    dp = body["deepprune"]
    assert dp["cluster_sizes"] == [2, 1, 1] and dp["stopped"] == [1, 3] and dp["finish_rule"] == "largest_cluster"
    assert dp["tokens_saved_estimate"] == 25 and sum(t["tokens"] for t in dp["traces"]) == 65
    # no answer: an empty message, and nothing saved when every trace finished (cons@N)
    assert completion_body("tiny", None, 1, outcome, traces, 0, 0)["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "stop"
    # no trace finished within max_tokens: "length", as OpenAI says of a cut-off completion
    cut = [{**t, "finished": False} for t in traces]
    assert completion_body("tiny", None, 1, outcome, cut, 0, 0)["choices"][0]["finish_reason"] == "length"
    assert saved_tokens_estimate([{**t, "finished": True} for t in traces]) == 0


def test_metrics_render_prometheus_text() -> None:
    m = ServeMetrics()
    usage = {"completion_tokens": 1234567, "judge_calls": 6, "judge_input_tokens": 480}
    m.record_completion("deepprune", usage, 25)
    m.record_completion("deepprune", usage, 5)
    m.inc("deepprune_rejected_requests_total", reason="overloaded")
    m.in_flight = 2
    text = m.render()
    assert 'deepprune_requests_total{policy="deepprune",status="ok"} 2\n' in text
    assert 'deepprune_generated_tokens_total{policy="deepprune"} 2469134\n' in text  # exact, not 2.46913e+06
    assert 'deepprune_tokens_saved_total{policy="deepprune"} 30\n' in text
    assert 'deepprune_rejected_requests_total{reason="overloaded"} 1\n' in text
    assert "# TYPE deepprune_requests_in_flight gauge\ndeepprune_requests_in_flight 2\n" in text
    assert m.value("deepprune_judge_calls_total", policy="deepprune") == 12
    with pytest.raises(KeyError, match="unknown counter"):
        m.inc("deepprune_typo_total")


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("serve", overrides=["judge=constant", *overrides])


def test_config_builds_every_policy_with_request_settings() -> None:
    from deepprune.online.judges import ConstantJudge
    from deepprune.serve.server import check_config
    from deepprune.serve.service import PolicyFactory

    cfg = _cfg()
    check_config(cfg)
    judge = ConstantJudge(0.7)
    factory = PolicyFactory(cfg, judge)
    assert set(factory.names) == {"deepprune", "cons", "deepconf_low", "deepconf_high"}
    p = factory.build("deepprune", 6, {"tau": 0.3, "k2": 2, "max_clusters": 3})
    # the shared judge, and the aggregation follows the request's k2 (its ${oc.select:policy.k2})
    assert (p.n, p.tau, p.k2, p.max_clusters, p.judge is judge, p.aggregation.k2) == (6, 0.3, 2, 3, True, 2)
    assert factory.build("deepprune", 8, {}).tau == cfg.tau == 0.5  # the next request is back to the defaults
    assert factory.build("cons", 5, {}).name == "cons@5"
    assert factory.build("deepconf_high", 5, {"warmup": 3}).warmup == 3


@pytest.mark.parametrize(
    "override, text",
    [("n=0", "n=0"), ("server.max_in_flight=0", "server.max_in_flight=0"), ("default_policy=x", "default_policy"),
     ("n=100", "server.max_n=64"), ("tau=2", "tau=2"), ("server.retry_after_s=-1", "server.retry_after_s=-1")],
)  # fmt: skip
def test_bad_server_config_names_the_key(override: str, text: str) -> None:
    from deepprune.serve.server import check_config

    with pytest.raises(ValueError, match=text):
        check_config(_cfg(override))


def test_draining_server_answers_503_before_the_lifespan_ends() -> None:
    """uvicorn runs the lifespan's exit only after the graceful drain; the signal handler's begin_shutdown makes
    /health and new requests say 503 during it (the real FastAPI app; the engine is not needed for these routes)."""
    from fastapi.testclient import TestClient

    from deepprune.serve.app import create_app
    from deepprune.serve.server import server_limits

    class NoEngine:  # the three things these routes read of the service
        model_names = ["tiny"]

        def engine_counts(self) -> dict:
            return {"unfinished": 0}

        def engine_error(self) -> None:
            return None

        def close(self) -> None:
            pass

    limits = server_limits(_cfg("server.retry_after_s=7", "server.max_in_flight=3").server)
    assert (limits.retry_after_s, limits.max_in_flight, limits.poll_s) == (7, 3, 0.2)
    assert server_limits(_cfg().server).retry_after_s == 1
    app = create_app(NoEngine(), limits)
    client = TestClient(app)
    assert client.get("/health").json()["status"] == "ok"
    app.state.begin_shutdown()
    assert client.get("/health").status_code == 503
    response = client.post("/v1/chat/completions", json={"model": "tiny", "messages": USER})
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"  # server.retry_after_s
    assert response.json()["error"]["type"] == "server_shutting_down"


def test_cancelled_request_aborts_only_traces_still_generating() -> None:
    """A request's view of the engine (`_Recorder`): on cancellation it aborts, and counts for
    ``deepprune_aborted_traces_total``, the traces neither finished nor already pruned by the policy, pruned ones
    recognised through a judge's snapshot of them too."""
    import asyncio
    import dataclasses

    from deepprune.online.generators.base import TraceState
    from deepprune.serve.service import _Recorder

    class Engine:  # records what the view forwards to the shared engine
        def __init__(self, handles: bool = True) -> None:
            self.released: list[list[int]] = []
            self.handles = handles

        async def start(self, problem, n, seed):
            return [TraceState(index=i, seed=seed, handle=object() if self.handles else None) for i in range(n)]

        async def release(self, states):
            self.released.append([s.index for s in states])

    async def scenario() -> tuple[int, int]:
        engine = Engine()
        view = _Recorder(engine)
        states = await view.start(None, 5, 0)
        states[0].finished = True
        await view.release([dataclasses.replace(states[1])])  # the policy prunes trace 1 through a snapshot
        aborted = await view.release_all()
        again = await view.release_all()  # nothing is aborted twice
        assert engine.released == [[1], [2, 3, 4]]
        return aborted, again

    assert asyncio.run(scenario()) == (3, 0)

    async def without_handles() -> list[list[int]]:  # a backend that keeps no handle: each state is its own trace
        engine = Engine(handles=False)
        view = _Recorder(engine)
        states = await view.start(None, 3, 0)
        await view.release([states[0]])
        assert await view.release_all() == 2
        return engine.released

    assert asyncio.run(without_handles()) == [[0], [1, 2]]


def test_engine_error_reads_the_engines_errored_flag() -> None:
    """`Service.engine_error` (what /health and each request check): None without an engine or while vLLM's
    ``errored`` is false; a message once it is true, or when the engine cannot even answer."""
    from types import SimpleNamespace

    from deepprune.serve.service import Service

    class Broken:
        @property
        def errored(self) -> bool:
            raise RuntimeError("engine core client is closed")

    def error(engine):
        return Service.engine_error(SimpleNamespace(generator=SimpleNamespace(engine=engine)))

    assert Service.engine_error(SimpleNamespace(generator=object())) is None  # replay: no engine
    assert error(None) is None and error(SimpleNamespace(errored=False)) is None
    assert "engine has died" in error(SimpleNamespace(errored=True))
    assert "engine has died" in error(Broken())
