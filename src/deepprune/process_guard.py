"""End a run's helper processes when the run itself ends, even by SIGKILL, when none of its own code runs.

vLLM starts its ``EngineCore`` (and that starts its workers) as a separate process. Its workers watch the engine
core and exit with it, but the engine core does not watch the process that started it: SIGKILL of a ``collect``
or ``online`` run leaves it running (gigabytes of memory, a busy core). SIGINT and ``close()`` are clean; for the
rest, :class:`ProcessGuard` starts a tiny watcher process in its own session whose stdin is a pipe from this
process. When that pipe closes (``release()``, normal exit, or the kernel closing it because this process died),
the watcher ends each listed process that is still the same process (pid and start time) together with its
children: SIGTERM, then SIGKILL after ``grace_s``::

    guard = ProcessGuard(engine_pids)  # after the engine started
    ...
    engine.shutdown(); guard.release()  # the processes are gone: the watcher just exits

Needs ``psutil`` (a dependency of vLLM). ``python -m deepprune.process_guard GRACE_S`` is the watcher itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable

__all__ = ["ProcessGuard"]


class ProcessGuard:
    """A watcher process that ends ``pids`` (and their children) once this process is gone or releases them."""

    def __init__(self, pids: Iterable[int], grace_s: float = 10.0) -> None:
        import psutil

        entries = []
        for pid in sorted(set(pids)):
            try:
                entries.append({"pid": pid, "create_time": psutil.Process(pid).create_time()})
            except psutil.NoSuchProcess:
                continue
        self.pids = [e["pid"] for e in entries]
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "deepprune.process_guard", str(float(grace_s))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process group too (kill -9 -PGID, a closed terminal)
            close_fds=True,
        )
        assert self._proc.stdin is not None
        for entry in entries:
            self._proc.stdin.write((json.dumps(entry) + "\n").encode())
        self._proc.stdin.flush()  # the pipe stays open: its end is the signal

    @property
    def watcher_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def release(self, timeout_s: float = 30.0) -> None:
        """Close the pipe and wait for the watcher; it ends whatever listed process is still running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __del__(self) -> None:
        try:
            self.release(timeout_s=1.0)
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass


def _end(entries: list[dict], grace_s: float) -> None:
    import psutil

    procs: dict[int, psutil.Process] = {}
    for entry in entries:
        try:
            proc = psutil.Process(int(entry["pid"]))
            if abs(proc.create_time() - float(entry["create_time"])) > 0.01:
                continue  # the pid was reused by an unrelated process
            for p in [proc, *proc.children(recursive=True)]:
                procs[p.pid] = p
        except psutil.Error:
            continue
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _main(argv: list[str]) -> None:
    grace_s = float(argv[0]) if argv else 10.0
    entries = [json.loads(line) for line in sys.stdin.buffer if line.strip()]  # blocks until the pipe closes
    _end(entries, grace_s)


if __name__ == "__main__":
    _main(sys.argv[1:])
