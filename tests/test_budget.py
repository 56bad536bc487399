"""The CPU-seconds training budget (deepprune.judge.budget): it stops fit at the step where the budget runs out,
counts what a resumed run had used, and rejects a budget that is not a positive number by its key."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepprune.judge.budget import CpuTimeBudget


class Clock:
    """CPU seconds that advance only when a training step runs: one second a step."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Regression(L.LightningModule):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.clock = clock

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.clock.now += 1.0
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4)  # 5 steps an epoch


def _fit(tmp_path: Path, budget: CpuTimeBudget, clock: Clock, ckpt_path: str | None = None, **kw) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=kw.pop("max_epochs", 10), callbacks=[budget], logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path, **kw,
    )  # fmt: skip
    trainer.fit(Regression(clock), train_dataloaders=_loader(), ckpt_path=ckpt_path)
    return trainer


def test_stops_at_the_step_where_the_budget_runs_out(tmp_path: Path) -> None:
    clock = Clock()
    budget = CpuTimeBudget(max_cpu_s=7.5, clock=clock)
    trainer = _fit(tmp_path, budget, clock)
    # steps 1..7 use 7 s < 7.5; step 8 reaches 8 s: it finishes, then fit stops (across the epoch boundary at 5)
    assert trainer.global_step == 8
    assert budget.stopped_at_step == 8
    assert budget.used_s == pytest.approx(8.0)
    clock.now += 50.0  # after fit the budget is frozen: test and blend passes are not training
    assert budget.used_s == pytest.approx(8.0)


def test_training_that_ends_first_is_not_stopped(tmp_path: Path) -> None:
    clock = Clock()
    budget = CpuTimeBudget(max_cpu_s=1000, clock=clock)
    trainer = _fit(tmp_path, budget, clock, max_epochs=2)
    assert trainer.global_step == 10
    assert budget.stopped_at_step is None
    assert budget.used_s == pytest.approx(10.0)


def test_a_resumed_run_counts_what_the_interrupted_one_used(tmp_path: Path) -> None:
    clock = Clock()
    first = _fit(tmp_path, CpuTimeBudget(max_cpu_s=7.5, clock=clock), clock, max_epochs=1)  # 5 steps, 5 s
    ckpt = tmp_path / "epoch1.ckpt"
    first.save_checkpoint(ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["callbacks"]
    assert [v["used_s"] for k, v in saved.items() if "CpuTimeBudget" in k] == [pytest.approx(5.0)]
    resumed_budget = CpuTimeBudget(max_cpu_s=7.5, clock=clock)
    resumed = _fit(tmp_path, resumed_budget, clock, ckpt_path=str(ckpt))
    # 5 s before the interruption: the resumed run stops at 8 s in all, step 8, as the uninterrupted run does
    assert resumed.global_step == 8
    assert resumed_budget.used_s == pytest.approx(8.0)


@pytest.mark.parametrize("bad", [0, -3, "soon", None, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_positive_number_names_the_key(bad: object) -> None:
    with pytest.raises(ValueError, match=r"callbacks\.cpu_budget\.max_cpu_s must be"):
        CpuTimeBudget(max_cpu_s=bad)  # type: ignore[arg-type]


def test_the_default_clock_is_this_process_cpu_time() -> None:
    budget = CpuTimeBudget(max_cpu_s=1.0)
    budget.on_fit_start(None, None)  # type: ignore[arg-type]
    total = 0
    for i in range(300_000):  # burn some CPU in this process
        total += i * i
    budget.on_fit_end(None, None)  # type: ignore[arg-type]
    assert total > 0
    assert 0.0 < budget.used_s < 60.0


def test_train_stops_on_the_budget_validates_there_and_records_its_cpu_time(tmp_path: Path) -> None:
    import json

    from test_train import make_cfg

    from deepprune.train import train

    # a budget spent by the first step: fit stops after it (10 epochs of 3 allowed), validates that step's weights,
    # and the metrics record one step and the CPU seconds fit used
    cfg = make_cfg(
        tmp_path, "trainer.max_epochs=10", "trainer.limit_train_batches=3", "export=false",
        "+callbacks.cpu_budget={_target_: deepprune.judge.budget.CpuTimeBudget, max_cpu_s: 1.0e-6}",
    )  # fmt: skip
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_steps"] == 1
    assert metrics["fit_cpu_s"] > 0 and 0 < metrics["fit_wall_s"] <= metrics["wall_time_s"]
    assert Path(metrics["best_checkpoint"]).name == "epoch_000.ckpt"  # the validation at the stop checkpointed
