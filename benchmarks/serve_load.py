"""Load on ``python -m deepprune.serve``: problems per minute and generated tokens per second under 1, 4 and 8
concurrent clients, DeepPrune against cons@N on the same requests, measured in one run.

Starts the server as a user would (vLLM CPU build, SmolLM2-135M-Instruct embedded default, the default MiniLM
embedding judge, loopback only), waits for ``/health``, sends one warm-up request, then for each client count runs
a bounded request loop: the same ``--requests`` CHAMP questions with the same seeds, once per policy (policies
alternate within a client count, so a load change on the machine hits both). Each client is a thread with its own
``openai`` client sending one request at a time. Ratios (against 1 client, and DeepPrune over cons@N) are what a
busy shared machine still measures; absolute figures are upper bounds there. Ends the server with SIGTERM.

    python benchmarks/serve_load.py                                  # 1, 4, 8 clients x 8 requests, n=8
    python benchmarks/serve_load.py --clients 1,4 --requests 4 --max-tokens 64   # a quick run
    python benchmarks/serve_load.py --json out.json -- judge=constant           # extra server overrides after --
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    import httpx

    cmd = [
        sys.executable, "-m", "deepprune.serve", f"server.port={port}", f"server.max_in_flight={args.max_in_flight}",
        f"n={args.n}", f"generator.max_tokens={args.max_tokens}", f"hydra.run.dir={log.parent}", *args.overrides,
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"the server did not come up in 15 minutes; see {log}")


def run_loop(base_url: str, model: str, jobs: list[dict[str, Any]], clients: int, policy: str) -> dict[str, Any]:
    """Send every job once with ``clients`` concurrent clients; wall time and summed usage."""
    import openai

    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        api = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=3600)
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                resp = api.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": job["question"]}], seed=job["seed"],
                    extra_body={"policy": policy},
                )  # fmt: skip
                usage = resp.usage.model_extra or {}
                row = {
                    "completion_tokens": resp.usage.completion_tokens,
                    "judge_calls": usage.get("judge_calls", 0),
                    "saved": resp.model_extra["deepprune"]["tokens_saved_estimate"],
                }
                with lock:
                    results.append(row)
            except Exception as err:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(err))

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = sum(r["completion_tokens"] for r in results)
    return {
        "policy": policy,
        "clients": clients,
        "requests": len(results),
        "errors": errors,
        "wall_s": round(wall, 2),
        "problems_per_min": round(len(results) / wall * 60, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "completion_tokens": tokens,
        "judge_calls": sum(r["judge_calls"] for r in results),
        "tokens_saved_estimate": sum(r["saved"] for r in results),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    base = {r["policy"]: r for r in rows if r["clients"] == min(x["clients"] for x in rows)}
    by = {(r["policy"], r["clients"]): r for r in rows}
    lines = [
        "| policy | clients | requests | wall s | problems/min | tokens/s | problems/min vs 1 client | tokens/s vs 1 "
        "client | tokens vs cons | problems/min vs cons |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base[r["policy"]]
        cons = by.get(("cons", r["clients"]))
        vs_tokens = f"{r['completion_tokens'] / cons['completion_tokens']:.3f}" if cons else "-"
        vs_rate = f"{r['problems_per_min'] / cons['problems_per_min']:.3f}" if cons else "-"
        lines.append(
            f"| {r['policy']} | {r['clients']} | {r['requests']} | {r['wall_s']:.1f} | {r['problems_per_min']:.2f} | "
            f"{r['tokens_per_s']:.1f} | {r['problems_per_min'] / b['problems_per_min']:.2f} | "
            f"{r['tokens_per_s'] / b['tokens_per_s']:.2f} | {vs_tokens} | {vs_rate} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,8", help="client counts, comma separated")
    parser.add_argument("--requests", type=int, default=8, help="requests per (policy, client count)")
    parser.add_argument("--n", type=int, default=8, help="traces per request")
    parser.add_argument("--max-tokens", type=int, default=128, help="generator.max_tokens (per trace)")
    parser.add_argument("--max-in-flight", type=int, default=8, help="server.max_in_flight")
    parser.add_argument("--policies", default="deepprune,cons")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    parser.add_argument("overrides", nargs="*", help="more server overrides (after --)")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    policies = args.policies.split(",")

    import httpx

    from deepprune.sources.champ import load_champ_problems

    problems = load_champ_problems(max_problems=args.requests)
    jobs = [{"question": p.question, "seed": i} for i, p in enumerate(problems)]
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="serve_load_")) / "server.log"
    t0 = time.perf_counter()
    proc = start_server(port, args, log)
    started_s = time.perf_counter() - t0
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        model = httpx.get(base_url + "/models", timeout=10).json()["data"][0]["id"]
        run_loop(base_url, model, jobs[:1], 1, policies[0])  # warm-up: first-request costs out of the figures
        load_before = os.getloadavg()
        rows = []
        for c in clients:
            for policy in policies:
                row = run_loop(base_url, model, jobs, c, policy)
                row["load_avg_1m"] = round(os.getloadavg()[0], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
        load_after = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k != "json"} | {"json": str(args.json)},
        "server_start_s": round(started_s, 1),
        "versions": {p: version(p) for p in ("vllm-cpu", "torch", "fastapi", "uvicorn", "openai", "transformers")},
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "rows": rows,
        "server_log": str(log),
    }
    print(markdown(rows))
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
