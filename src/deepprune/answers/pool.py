"""The math-verify worker pool: one persistent subprocess shared by every checker, with hard time limits.

The worker (:mod:`deepprune.answers.worker`) speaks JSON lines over stdin/stdout. It bounds each step of a
comparison by CPU time itself; a step its timer cannot interrupt (a long C-level operation such as ``9**9**9**9``)
gets it killed and restarted here once it has used ``3 * timeout_s + 1`` s of CPU (or ``3 * timeout_s + 5`` s
of wall time). CPU rather than wall time keeps verdicts the same on a loaded machine.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["POOL", "Verdict", "WorkerPool"]

logger = logging.getLogger(__name__)

# the command that starts the worker process (the package is found through PYTHONPATH, set below)
WORKER_CODE = "from deepprune.answers.worker import main; main()"


class _WorkerDied(RuntimeError):
    pass


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class _Worker:
    """A persistent ``python`` subprocess running :func:`deepprune.answers.worker.main`; JSON lines over stdio."""

    def __init__(self, startup_timeout_s: float = 120.0) -> None:
        src_dir = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = src_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            close_fds=True,
        )
        self._buf = b""
        self._next_id = 0
        ready = self._read_line(time.monotonic() + startup_timeout_s)
        if ready is None or json.loads(ready).get("ready") is not True:
            self.kill()
            raise RuntimeError("deepprune.answers: the math-verify worker did not start")

    def _read_line(self, deadline: float) -> str | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _WorkerDied("math-verify worker exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8")

    def send(self, payload: dict[str, Any]) -> int:
        """Send one request; its id."""
        self._next_id += 1
        try:
            self.proc.stdin.write((json.dumps({**payload, "id": self._next_id}) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise _WorkerDied(str(e)) from e
        return self._next_id

    def read_reply(self, req_id: int, cpu_limit_s: float, wall_limit_s: float) -> dict[str, Any] | None:
        """The next reply line of request ``req_id``; None when the worker seems stuck (it is then killed).

        The worker bounds its own work by CPU time, so a reply normally comes; the worker is declared stuck only
        when it has used ``cpu_limit_s`` of CPU (a long C-level operation its timer cannot interrupt) or
        ``wall_limit_s`` has passed, whichever comes first. CPU rather than wall time keeps verdicts the same on
        a loaded machine.
        """
        start_wall = time.monotonic()
        start_cpu = _cpu_seconds(self.proc.pid)
        hard_deadline = start_wall + wall_limit_s
        while True:
            # poll at a short interval to watch the worker's CPU time
            line = self._read_line(min(hard_deadline, time.monotonic() + 0.25))
            if line is not None:
                reply = json.loads(line)
                if reply.get("id") != req_id:
                    continue  # a stale reply of an earlier request
                if "error" in reply:
                    raise _WorkerDied(reply["error"])
                return reply
            now_cpu = _cpu_seconds(self.proc.pid)
            over_cpu = start_cpu is not None and now_cpu is not None and now_cpu - start_cpu > cpu_limit_s
            if over_cpu or time.monotonic() >= hard_deadline:
                self.kill()
                return None
            if start_cpu is None and time.monotonic() - start_wall > cpu_limit_s:
                self.kill()  # no /proc: wall time stands in for CPU time
                return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a killed process always exits
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


@dataclass
class Verdict:
    equal: bool
    timed_out: bool = False
    killed: bool = False


class WorkerPool:
    """The process-wide math-verify worker, shared by every checker (options travel with each request)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.worker: _Worker | None = None
        self.restarts = 0

    def first_match(self, a: str, bs: Sequence[str], opts: dict[str, Any], timeout_s: float) -> list[Verdict]:
        """Verdicts of ``a`` against ``bs`` in order, up to and including the first equal one.

        The worker answers pair by pair, so a stuck pair is known exactly: it is "not equal" (timed out), the
        worker is killed, and the remaining pairs go to a fresh worker.
        """
        out: list[Verdict] = []
        # a pair parses two strings and verifies, each bounded by timeout_s of worker CPU time
        cpu_limit = 3 * timeout_s + 1.0
        wall_limit = 3 * timeout_s + 5.0
        with self.lock:
            failures = 0
            while len(out) < len(bs):
                if self.worker is None or not self.worker.alive():
                    self.worker = _Worker()
                    self.restarts += 1
                todo = list(bs[len(out) :])
                try:
                    req = self.worker.send({"a": a, "bs": todo, "opts": opts, "timeout": timeout_s})
                    for _ in todo:
                        reply = self.worker.read_reply(req, cpu_limit, wall_limit)
                        if reply is None:  # stuck: the worker was killed
                            self.worker = None
                            out.append(Verdict(False, timed_out=True, killed=True))
                            break
                        out.append(Verdict(bool(reply["result"]), timed_out=bool(reply.get("timeout"))))
                        if out[-1].equal:
                            return out
                except _WorkerDied as e:
                    # a crash in the worker (e.g. deep recursion in sympy) is retried once in a fresh worker
                    if self.worker is not None:
                        self.worker.kill()
                    self.worker = None
                    failures += 1
                    if failures >= 2:
                        logger.warning("math-verify worker failed twice on one comparison (%s): not equal", e)
                        out.append(Verdict(False))
                        failures = 0
        return out

    def shutdown(self) -> None:
        with self.lock:
            if self.worker is not None:
                self.worker.kill()
                self.worker = None


POOL = WorkerPool()
atexit.register(POOL.shutdown)
