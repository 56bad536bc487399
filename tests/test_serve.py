"""``python -m deepprune.serve`` as a user runs it: a real server process on the vLLM CPU engine with the tiny Qwen3,
called with the real ``openai`` client.

One server serves the module's tests (engine start dominates); the last of them sends it SIGTERM and checks that no
process of it remains. The engine-death test starts a second server and kills its engine core. cons@N's vote is
recomputed independently: the same prompt and per-trace seeds on a separate in-process vLLM engine, answers
extracted and voted here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("vllm")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
psutil = pytest.importorskip("psutil")

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

MAX_TOKENS = 160  # per trace: cons@64 then takes far longer than the overload test's 3 s client timeout
MAX_N = 64
QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, **kw)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def metric(self, line_start: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
        return values[0] if values else 0.0


def _launch(tiny_qwen3_dir: Path, run_dir: Path) -> Server:
    """A server process on the tiny Qwen3, once its /health answers 200."""
    port = _free_port()
    log = run_dir / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    cmd = [
        sys.executable, "-m", "deepprune.serve", f"generator.model={tiny_qwen3_dir}", "generator.model_name=tiny",
        f"generator.max_tokens={MAX_TOKENS}", "generator.temperature=1.0", "generator.top_p=1.0",
        "generator.engine.max_model_len=512", "judge=constant", "judge.p=0.9", f"server.port={port}",
        "server.max_in_flight=2", f"server.max_n={MAX_N}", "server.graceful_shutdown_s=2", "n=4",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    srv = Server(proc, port, log)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(srv.url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail(f"the server did not come up:\n{log.read_text()[-4000:]}")
    return srv


@pytest.fixture(scope="module")
def server(tiny_qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    srv = _launch(tiny_qwen3_dir, tmp_path_factory.mktemp("serve"))
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def _reference_cons(model_dir: Path, n: int, seed: int) -> tuple[list[int], list[str | None]]:
    """cons@n computed here: the server's prompt and per-trace seeds on an in-process vLLM engine."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from deepprune.answers import extract_answer
    from deepprune.online.generators.base import derive_seed

    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    llm = LLM(model=str(model_dir), dtype="float32", max_model_len=512, enable_prefix_caching=True,
              enforce_eager=True, enable_chunked_prefill=False, seed=0)  # fmt: skip
    params = [
        SamplingParams(seed=derive_seed(seed, i) % (2**63 - 1), temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS)
        for i in range(n)
    ]
    outs = llm.generate([TokensPrompt(prompt_token_ids=prompt)] * n, params)
    tokens = [len(o.outputs[0].token_ids) for o in outs]
    answers = [extract_answer(o.outputs[0].text, finished=o.outputs[0].finish_reason == "stop") for o in outs]
    del llm
    return tokens, answers


def test_models_health_and_a_deepprune_request_counts_the_engines_tokens(server: Server) -> None:
    client = server.client()
    assert [m.id for m in client.models.list().data] == ["tiny"]
    before = server.metric("deepprune_engine_generated_tokens_total")
    resp = client.chat.completions.create(model="tiny", messages=QUESTION, n=6, seed=3, extra_body={"k2": 2})
    assert len(resp.choices) == 1 and resp.choices[0].message.role == "assistant"
    usage, dp = resp.usage, resp.model_extra["deepprune"]
    engine_tokens = server.metric("deepprune_engine_generated_tokens_total") - before
    # every generated token, as the engine streamed them: prefixes of all six traces and the continuations
    assert usage.completion_tokens == engine_tokens == sum(t["tokens"] for t in dp["traces"]) > 0
    assert usage.completion_tokens == dp["prefix_tokens"] + dp["continuation_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # p=0.9 >= tau: one cluster of six; k2=2 of them finish; the others stop at their prefixes (a trace whose
    # prefix never settles runs to the budget in the prefix phase and counts as finished)
    assert dp["cluster_sizes"] == [6] and len(dp["finishers"]) == 2
    stopped = [t for t in dp["traces"] if t["index"] in dp["stopped"]]
    assert stopped and not set(dp["stopped"]) & set(dp["finishers"])
    assert all(t["tokens"] < MAX_TOKENS and not t["finished"] for t in stopped)
    # greedy clustering compares trace t with min(K1, |c|) members: 1 + 2 + 3 + 4 + 5 judgments; a constant judge
    # reads no text
    assert (usage.model_extra["judge_calls"], usage.model_extra["judge_input_tokens"]) == (15, 0)
    assert dp["tokens_saved_estimate"] >= 0 and dp["finish_rule"]
    assert server.metric('deepprune_requests_total{policy="deepprune",status="ok"}') == 1
    assert server.health()["engine"]["unfinished_requests"] == 0


def test_cons_with_a_seed_returns_cons_at_n_of_the_same_traces(
    server: Server, tiny_qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepprune.online.voting import majority_vote

    # the reference engine runs in this process: a small KV cache, no engine-core process
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

    resp = server.client().chat.completions.create(
        model="tiny", messages=QUESTION, n=5, seed=123, extra_body={"policy": "cons"}
    )
    dp = resp.model_extra["deepprune"]
    tokens, answers = _reference_cons(tiny_qwen3_dir, 5, 123)
    assert [t["tokens"] for t in dp["traces"]] == tokens and resp.usage.completion_tokens == sum(tokens)
    assert [t["answer"] for t in dp["traces"]] == answers
    vote = majority_vote(answers).answer
    assert resp.choices[0].message.content == (vote if vote is not None else "")
    assert dp["policy"] == "cons@5" and dp["stopped"] == [] and dp["tokens_saved_estimate"] == 0
    again = server.client().chat.completions.create(
        model="tiny", messages=QUESTION, n=5, seed=123, extra_body={"policy": "cons"}
    )
    assert again.model_extra["deepprune"]["traces"] == dp["traces"]  # same seed, same traces


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"n": 0}, "n"),
        ({"n": MAX_N + 1}, "n"),
        ({"extra_body": {"policy": "beam"}}, "policy"),
        ({"extra_body": {"tau": 1.5}}, "tau"),
        ({"model": "gpt-4o"}, "model"),
        ({"messages": [{"role": "user", "content": "two plus two " * 400}]}, "messages"),
    ],
)
def test_bad_requests_get_400_naming_the_field_before_generation(server: Server, kwargs: dict, param: str) -> None:
    before = server.health()["engine"]
    args = {"model": "tiny", "messages": QUESTION, **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        server.client().chat.completions.create(**args)
    assert err.value.status_code == 400 and err.value.param == param
    assert param.split("[")[0] in str(err.value)
    assert server.health()["engine"] == before  # nothing reached the engine


def test_the_prompt_is_the_chat_template_of_all_messages(server: Server, tiny_qwen3_dir: Path) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "Answer briefly."}, *QUESTION]
    tok = AutoTokenizer.from_pretrained(tiny_qwen3_dir)
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    resp = server.client().chat.completions.create(model="tiny", messages=messages, n=1, extra_body={"policy": "cons"})
    assert resp.usage.prompt_tokens == len(tok(text, add_special_tokens=False)["input_ids"])
    alone = server.client().chat.completions.create(
        model="tiny", messages=QUESTION, n=1, extra_body={"policy": "cons"}
    )
    assert alone.usage.prompt_tokens < resp.usage.prompt_tokens  # the system message is part of the prompt


def test_overload_gets_429_and_disconnects_abort_every_trace(server: Server) -> None:
    """Two slow requests fill server.max_in_flight=2; a third gets 429. Both clients then time out and hang up:
    the server aborts all their traces (nothing left running in the engine) long before they would finish."""
    errors: list[BaseException] = []

    def slow() -> None:
        try:  # 64 traces of cons@64: far longer than the client's 3 s patience on 2 CPU cores
            server.client(timeout=3.0).chat.completions.create(
                model="tiny", messages=QUESTION, n=MAX_N, extra_body={"policy": "cons"}
            )
        except BaseException as err:  # noqa: BLE001 - checked below
            errors.append(err)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    health = server.health()
    while (health["in_flight"] < 2 or not health["engine"]["unfinished_requests"]) and time.time() < deadline:
        time.sleep(0.05)
        health = server.health()
    assert health["in_flight"] == 2 and health["engine"]["unfinished_requests"] > 0  # their traces are generating
    with pytest.raises(openai.RateLimitError) as err:
        server.client().chat.completions.create(model="tiny", messages=QUESTION, n=1)
    assert err.value.status_code == 429 and "server.max_in_flight" in str(err.value)
    for t in threads:
        t.join(timeout=60)
    assert len(errors) == 2 and all(isinstance(e, openai.APITimeoutError) for e in errors)
    deadline = time.time() + 30
    while server.health()["in_flight"] and time.time() < deadline:
        time.sleep(0.05)
    # a handler returns only after its traces were aborted: the engine is empty at once, not once they would end
    health = server.health()
    assert health["in_flight"] == 0 and health["engine"]["unfinished_requests"] == 0
    assert server.metric('deepprune_requests_total{policy="cons",status="disconnected"}') == 2
    assert server.metric('deepprune_aborted_traces_total{reason="disconnected"}') > 0
    assert server.metric('deepprune_rejected_requests_total{reason="overloaded"}') == 1


def test_sigterm_stops_the_server_and_leaves_no_process(server: Server) -> None:
    proc = psutil.Process(server.proc.pid)
    children = proc.children(recursive=True)  # the engine core (and its workers)
    assert children, "the engine runs in a child process"
    box: dict = {}

    def in_flight() -> None:
        try:
            box["resp"] = server.client(timeout=60).chat.completions.create(
                model="tiny", messages=QUESTION, n=8, extra_body={"policy": "cons"}
            )
        except BaseException as err:  # noqa: BLE001 - either outcome is allowed: finished or aborted
            box["err"] = err

    t = threading.Thread(target=in_flight)
    t.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once its shutdown is done, so the exit status is SIGTERM's (or 0)
    assert server.proc.wait(timeout=120) in (0, -signal.SIGTERM), server.log.read_text()[-3000:]
    assert "Application shutdown complete" in server.log.read_text()  # the lifespan's end closed the engine
    t.join(timeout=60)
    assert "resp" in box or "err" in box  # answered within the grace period, or cut off: never left hanging
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"processes left behind: {[p.pid for p in alive]}"


def test_a_dead_engine_makes_health_and_requests_503(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    """A server of its own: its vLLM engine core process is killed (as the OOM killer would) while a request
    generates; that request, /health and the next request say 503 engine_dead instead of ok, and the server still
    stops on SIGTERM and leaves no process."""
    srv = _launch(tiny_qwen3_dir, tmp_path)
    box: dict = {}

    def in_flight() -> None:
        try:  # cons@64 of 160 tokens: far from done when the engine is killed
            srv.client(timeout=120).chat.completions.create(
                model="tiny", messages=QUESTION, n=MAX_N, extra_body={"policy": "cons"}
            )
        except BaseException as err:  # noqa: BLE001 - checked below
            box["err"] = err

    try:
        proc = psutil.Process(srv.proc.pid)
        cores = [p for p in proc.children(recursive=True) if "EngineCore" in " ".join(p.cmdline()) + p.name()]
        assert cores, f"no engine core among {[(p.pid, p.name()) for p in proc.children(recursive=True)]}"
        others = [p for p in proc.children(recursive=True) if p not in cores]
        t = threading.Thread(target=in_flight)
        t.start()
        deadline = time.time() + 30
        while not srv.health()["engine"].get("unfinished_requests") and time.time() < deadline:
            time.sleep(0.05)
        assert srv.health()["engine"]["unfinished_requests"] > 0  # its traces are generating
        for p in cores:
            p.kill()
        t.join(timeout=120)
        assert isinstance(box.get("err"), openai.APIStatusError), box
        assert box["err"].status_code == 503 and "engine" in str(box["err"])
        deadline = time.time() + 60
        while httpx.get(srv.url + "/health", timeout=10).status_code == 200 and time.time() < deadline:
            time.sleep(0.2)
        health = httpx.get(srv.url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "engine_dead", health.text
        with pytest.raises(openai.APIStatusError) as err:
            srv.client().chat.completions.create(model="tiny", messages=QUESTION, n=1)
        assert err.value.status_code == 503 and "engine" in str(err.value)
        assert srv.metric('deepprune_rejected_requests_total{reason="engine_dead"}') == 1
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=120) in (0, -signal.SIGTERM), srv.log.read_text()[-3000:]
        _, alive = psutil.wait_procs(others, timeout=30)
        assert alive == [], f"processes left behind: {[p.pid for p in alive]}"
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
