"""The notebooks in notebooks/ are committed without outputs and run headless on outputs built here.

Each notebook reads the run directory named by DEEPPRUNE_RUN_DIR; the tests make small ones in tmp_path
(the analyze entry on a hand-made trace file; metrics.json + scores.jsonl shaped like the train and
online entries' outputs) and execute the notebook with nbclient on the `python3` kernel of this
interpreter's environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def execute(name: str, run_dir: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("DEEPPRUNE_RUN_DIR", str(run_dir))
    monkeypatch.setenv("DEEPPRUNE_NOTEBOOK_OUT", str(out_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/markdown", "")))
    return "\n".join(parts)


def image_count(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
            assert "/work" not in cell.source and "/tmp" not in cell.source


def test_expected_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"redundancy_analysis", "judge_roc_analysis", "online_tradeoffs"}


def _trace(pid: str, model: str, i: int, answer: str) -> dict:
    return {"problem_id": pid, "model": model, "sample_id": i, "text": f"Wait, so the answer is {answer}.",
            "answer": answer, "finished": True, "num_tokens": 10}  # fmt: skip


@pytest.mark.slow
def test_redundancy_notebook_on_analyze_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # model A: answers 1,1,1,2 on each problem -> 3 same pairs of 6; model B: all 5 -> 6 of 6
    traces = [_trace(p, "A", i, a) for p in ("p1", "p2") for i, a in enumerate("1112")]
    traces += [_trace(p, "B", i, "5") for p in ("p1", "p2") for i in range(4)]
    trace_file = tmp_path / "traces.jsonl"
    trace_file.write_text("".join(json.dumps(t) + "\n" for t in traces))
    logs = tmp_path / "logs"
    proc = subprocess.run(
        [sys.executable, "-m", "deepprune.analyze", "source=jsonl", f"source.path={trace_file}",
         f"paths.log_dir={logs}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((logs / "analyze" / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["models"]["A"]["ratio"] == pytest.approx(0.5)
    assert metrics["average"]["ratio"] == pytest.approx(18 / 24)

    nb = execute("redundancy_analysis", run_dir, tmp_path / "nb", monkeypatch)
    text = outputs_text(nb)
    assert "| A | 12 | 6 | 0.5000 |" in text
    assert "| Average (pair-weighted) | 24 | 18 | 0.7500 |" in text
    assert "| GLM-4.5-Air | 11870 | 11213 | 0.9447 |" in text
    assert image_count(nb) == 1 and (tmp_path / "nb" / "redundancy_ratios.png").stat().st_size > 5000


def test_judge_roc_notebook_on_train_like_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sweep = tmp_path / "multiruns" / "t"
    labels = [1, 1, 0, 0, 1, 0]
    for i, loss in enumerate(["ce", "focal"]):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n")
        per_model = {"GPT-4": {"auroc": 0.6 + i / 10, "tnr_at_fnr": 0.3}, "average": {"auroc": 0.6 + i / 10}}
        metrics = {"test/auroc": 0.6 + i / 10, "test/tnr_at_fnr": 0.3, "per_model": per_model, "global_steps": 5}
        (job / "metrics.json").write_text(json.dumps(metrics))
        scores = [0.9, 0.4 + i / 10, 0.5, 0.2, 0.7, 0.1]
        (job / "scores.jsonl").write_text(
            "".join(json.dumps({"score": s, "label": y}) + "\n" for s, y in zip(scores, labels))
        )
    nb = execute("judge_roc_analysis", sweep, tmp_path / "nb", monkeypatch)
    text = outputs_text(nb)
    assert "| 1 | focal | 0.7000 | 0.3000 |" in text
    assert "| GPT-4 | 0.7000 | 0.3000 |" in text
    assert image_count(nb) == 1 and (tmp_path / "nb" / "roc_overlay.png").exists()


def test_online_notebook_on_tau_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # metrics.json shaped as deepprune.online writes it: the policy and its cons@N reference side by side
    sweep = tmp_path / "multiruns" / "o"
    for i, (tau, tokens, acc, pk) in enumerate([(0.5, 1000, 0.45, 0.7), (0.75, 2000, 0.5, 0.8)]):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- tau={tau}\n")
        policies = {
            "deepprune": {"problems": 2, "accuracy": acc, "tokens_total": tokens, "pass_at_k": pk,
                          "token_reduction": 1 - tokens / 4000},
            "cons@18": {"problems": 2, "accuracy": 0.5, "tokens_total": 4000, "pass_at_k": None,
                        "token_reduction": 0.0},
        }  # fmt: skip
        metrics = {"policy": "deepprune", "policies": policies, "reference": "cons@18"}
        (job / "metrics.json").write_text(json.dumps(metrics))
    nb = execute("online_tradeoffs", sweep, tmp_path / "nb", monkeypatch)
    text = outputs_text(nb)
    assert "| tau=0.5 deepprune | 0.5000 | 1000.0000 | 0.7500 | 0.4500 | 0.7000 |" in text
    assert "| tau=0.75 cons@18 | 0.7500 | 4000.0000 | 0.0000 | 0.5000 |  |" in text
    assert image_count(nb) == 2  # Pareto and tau plots
    assert (tmp_path / "nb" / "tau_tradeoff.png").stat().st_size > 5000
