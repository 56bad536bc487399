"""The vLLM backend's plumbing: the asyncio loop thread that drives AsyncLLM, and the clean-up of engine processes.

:class:`EventLoopThread` runs an event loop forever in a daemon thread (the engine's output handler and sockets
bind to it; synchronous code calls into it with ``run``, other loops with ``run_coroutine_threadsafe``).
:func:`child_pids` and :func:`stop_processes` find and end the processes an engine spawned, so ``close()``
leaves none behind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from deepprune.runtime import get_logger

log = get_logger(__name__)
T = TypeVar("T")

__all__ = ["EventLoopThread", "cancel_task", "child_pids", "stop_processes"]


class EventLoopThread:
    """An asyncio event loop running forever in a daemon thread; `run(coro)` blocks until the coroutine is done."""

    def __init__(self, name: str = "deepprune-vllm-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def in_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def stop(self) -> None:
        if self.loop.is_running():
            # let cancelled engine tasks (output handler, socket readers) unwind before the loop goes away
            try:
                asyncio.run_coroutine_threadsafe(_drain_tasks(), self.loop).result(timeout=30)
            except Exception as err:  # noqa: BLE001 - best effort during shutdown
                log.debug("event loop drain: %s", err)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
        if not self.loop.is_running():
            self.loop.close()


async def cancel_task(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (if any and still running) and wait until it has unwound."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _drain_tasks() -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def child_pids() -> set[int]:
    """Live child processes, except multiprocessing's resource tracker (shared by the whole interpreter)."""
    import psutil

    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def stop_processes(pids: set[int], grace_s: float = 15.0) -> None:
    """Wait for the engine's processes to exit after shutdown; terminate (then kill) any that linger."""
    import multiprocessing

    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        log.warning("vLLM engine process %d still running after shutdown; terminating it", proc.pid)
        proc.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for proc in alive:
        proc.kill()
    multiprocessing.active_children()  # reap exited children of this process (no zombies left)
