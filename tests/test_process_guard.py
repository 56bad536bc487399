"""Helper processes end with the run that started them, even when it is SIGKILLed (issue 10, item 16).

The real thing first on a plain child process (fast), then on a real vLLM engine (the CPU build): a parent starts
it, is SIGKILLed, and no engine process may remain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

from deepprune.process_guard import ProcessGuard, _end  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if _running(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [p for p in pids if _running(p)]


def _start_parent(
    script: str, tmp_path: Path, timeout_s: float, env: dict | None = None
) -> tuple[subprocess.Popen, dict]:
    """Run ``script`` as a parent process; it prints ``PIDS <json>`` (its helpers' pids) and then waits forever."""
    path = tmp_path / "parent.py"
    path.write_text(textwrap.dedent(script))
    log = (tmp_path / "parent.log").open("w")  # a file, not a pipe: a full pipe would block a chatty parent
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("PIDS "):
            return proc, json.loads(line.removeprefix("PIDS "))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the parent printed no pids: {(tmp_path / 'parent.log').read_text()[-3000:]}")


def test_sigkilled_parent_takes_its_helper_along(tmp_path: Path) -> None:
    script = """
        import json, subprocess, sys, time
        from deepprune.process_guard import ProcessGuard
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        guard = ProcessGuard([child.pid], grace_s=2)
        print("PIDS", json.dumps({"child": child.pid, "watcher": guard.watcher_pid}), flush=True)
        time.sleep(600)
    """
    parent, pids = _start_parent(script, tmp_path, timeout_s=60)
    assert _running(pids["child"]) and _running(pids["watcher"])
    time.sleep(1.0)
    assert _running(pids["child"])  # the watcher waits while the parent lives
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone([pids["child"], pids["watcher"]], timeout_s=20) == []


def test_release_lets_the_watcher_exit_and_a_reused_pid_is_spared(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        guard = ProcessGuard([child.pid], grace_s=2)
        watcher = guard.watcher_pid
        assert watcher is not None
        guard.release()  # normal shutdown: what is still listed and running goes too
        assert child.wait(timeout=20) is not None and not _running(watcher)
    finally:
        child.kill()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _end([{"pid": other.pid, "create_time": 1.0}], grace_s=1)  # same pid, another start time
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
@pytest.mark.vllm
def test_sigkill_of_a_vllm_run_leaves_no_engine_process(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    script = f"""
        import json, time
        from deepprune.online.generators.vllm import VLLMGenerator
        from deepprune.vllm_engine import EngineSettings

        if __name__ == "__main__":
            engine = EngineSettings(dtype="float32", max_model_len=256)
            gen = VLLMGenerator(model={str(tiny_qwen3_dir)!r}, max_tokens=8, engine=engine)
            pids = {{"engine": sorted(gen._engine_pids), "watcher": gen._guard.watcher_pid}}
            print("PIDS", json.dumps(pids), flush=True)
            time.sleep(600)
    """
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    parent, pids = _start_parent(script, tmp_path, timeout_s=400, env=env)
    engine = pids["engine"]
    assert engine and all(_running(p) for p in engine)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone([*engine, pids["watcher"]], timeout_s=30) == []
