"""Training throughput of the judge: Lightning (JudgeModule + Trainer) vs a plain PyTorch loop.

Same head (the embedded default's, `model=minilm` unless overridden), same batches (random token ids of the
default's shape: data.batch_size x the head's max_length), same loss and optimizer, in one process; the two
variants alternate per repeat. Reports the median seconds per step, pairs/second, peak RSS during each variant
(sampled with psutil) and, on a GPU, peak CUDA memory allocated, then the Lightning/plain throughput ratio.

    python benchmarks/train_throughput.py                       # embedded default, CPU
    python benchmarks/train_throughput.py --steps 20 --repeats 3 model=tiny_classifier
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import threading
import time

import psutil
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate


class PeakRSS:
    """Peak resident memory of this process while the context is open (sampled every 10 ms)."""

    def __enter__(self) -> PeakRSS:
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_batches(head, n: int, batch_size: int, length: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    vocab = len(head.tokenizer)
    return [
        {
            "input_ids": torch.randint(5, vocab, (batch_size, length), generator=g),
            "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
            "labels": torch.randint(0, 2, (batch_size,), generator=g),
        }
        for _ in range(n)
    ]


def run_plain(head, loss_fn, opt_factory, batches, device) -> list[float]:
    head = head.to(device).train()
    opt = opt_factory(params=[p for p in head.parameters() if p.requires_grad])
    times = []
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = head(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        loss_fn(logits, b["labels"]).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def run_lightning(head, loss_fn, opt_factory, batches, accelerator) -> list[float]:
    import lightning as L

    from deepprune.judge.module import JudgeModule

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t)

    head.train()
    module = JudgeModule(head=head, loss_fn=loss_fn, optimizer=opt_factory, reference_scorer=None)
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_steps=len(batches), logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return timer.times


def main() -> None:
    from deepprune.runtime import CONF_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant and repeat")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml (e.g. model=tiny_classifier)")
    args = ap.parse_args()

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=args.overrides)
    torch.manual_seed(cfg.seed)
    head0 = instantiate(cfg.model)
    loss_fn, opt_factory = instantiate(cfg.loss), instantiate(cfg.optimizer)
    length = int(head0.max_length or 2 * cfg.data.token_k + 3)
    bs = int(cfg.data.batch_size)
    batches = make_batches(head0, args.warmup + args.steps, bs, length, cfg.seed)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    results: dict[str, dict[str, list]] = {"plain": {"step_s": [], "rss": [], "cuda": []}}
    results["lightning"] = {"step_s": [], "rss": [], "cuda": []}
    for rep in range(args.repeats):
        order = ("plain", "lightning") if rep % 2 == 0 else ("lightning", "plain")
        for name in order:
            head = copy.deepcopy(head0)  # identical starting weights for both
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with PeakRSS() as rss:
                if name == "plain":
                    times = run_plain(head, loss_fn, opt_factory, batches, device)
                else:
                    times = run_lightning(head, loss_fn, opt_factory, batches, "gpu" if cuda else "cpu")
            results[name]["step_s"] += times[args.warmup :]
            results[name]["rss"].append(rss.peak)
            results[name]["cuda"].append(torch.cuda.max_memory_allocated() if cuda else 0)
            del head
    summary = {
        "model": cfg.model._target_,
        "batch": [bs, length],
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    for name, r in results.items():
        med = statistics.median(r["step_s"])
        summary[name] = {
            "median_step_s": round(med, 4),
            "pairs_per_s": round(bs / med, 2),
            "peak_rss_mib": round(max(r["rss"]) / 2**20, 1),
            "peak_cuda_mib": round(max(r["cuda"]) / 2**20, 1),
            "steps_timed": len(r["step_s"]),
        }
    summary["lightning_over_plain_throughput"] = round(
        summary["lightning"]["pairs_per_s"] / summary["plain"]["pairs_per_s"], 3
    )
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)


if __name__ == "__main__":
    main()
