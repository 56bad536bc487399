"""A training budget in CPU seconds: stop fitting once the process has used a given amount of CPU time.

Lightning's ``Timer`` (``trainer.max_time``) counts wall time, so on a shared machine the number of optimizer steps
a budget buys depends on what else runs: judge families compared "at equal budget" would compare the load as much
as the families. The process's CPU time (all its threads, ``time.process_time``) counts only the work this run
did. The budget starts with ``fit`` and includes the validation passes inside it (they are part of what a family
costs); it is checked after every training batch, and like ``Timer`` it lets Lightning finish the step, validate
and checkpoint before stopping. A resumed run continues with what the interrupted one had used (saved in the
checkpoint). Configure with ``+callbacks.cpu_budget={_target_: deepprune.judge.budget.CpuTimeBudget,
max_cpu_s: 300}`` (see ``conf/experiment/issue12_judge_families.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L

from deepprune.runtime import get_logger

log = get_logger(__name__)

__all__ = ["CpuTimeBudget"]


class CpuTimeBudget(L.Callback):
    """Stop training once ``max_cpu_s`` CPU seconds (this process, all threads) have been used since fit began.

    ``clock`` returns CPU seconds; ``time.process_time`` unless a test passes its own. After fit, ``used_s`` is
    the CPU time fit used and ``stopped_at_step`` the global step at which the budget ran out (None if training
    ended first).
    """

    def __init__(self, max_cpu_s: float, clock: Callable[[], float] = time.process_time) -> None:
        key = "callbacks.cpu_budget.max_cpu_s"
        try:
            value = float(max_cpu_s)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number of seconds, got {max_cpu_s!r}") from None
        if not 0 < value < float("inf"):  # NaN fails both comparisons
            raise ValueError(f"{key} must be a finite number > 0, got {max_cpu_s!r}")
        self.max_cpu_s = value
        self._clock = clock
        self._start: float | None = None
        self._used_before = 0.0  # CPU seconds of an interrupted run this one resumes
        self.stopped_at_step: int | None = None

    @property
    def used_s(self) -> float:
        """CPU seconds fit has used so far (with those of the run it resumed)."""
        if self._start is None:
            return self._used_before
        return self._used_before + self._clock() - self._start

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._clock()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._used_before, self._start = self.used_s, None  # freeze: test and blend passes are not training

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.stopped_at_step is not None:
            return
        spent = self.used_s >= self.max_cpu_s
        # every rank stops at the same step when any rank is out of budget (as Lightning's Timer decides)
        spent = trainer.strategy.reduce_boolean_decision(spent, all=False)
        if spent:
            trainer.should_stop = True
            self.stopped_at_step = trainer.global_step
            log.info("CPU budget of %.0f s used (%.0f s) at step %d: stopping", self.max_cpu_s, self.used_s,
                     trainer.global_step)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"used_s": self.used_s, "max_cpu_s": self.max_cpu_s}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before on_fit_start; if a fit had started, restart its clock: what the
        # checkpoint had used counts from here on
        self._used_before = float(state_dict.get("used_s", 0.0))
        if self._start is not None:
            self._start = self._clock()
