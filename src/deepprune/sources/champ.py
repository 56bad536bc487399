"""CHAMP (the ``champ-dataset`` package): 270 competition problems and 19,440 real solutions, offline.

Each problem carries 72 conversations: 4 generating models (GPT-3.5, GPT-4, GPT-4 Turbo, PaLM 2 Medium) times
18 prompt settings (0-shot, 5-shot, partial solutions, concept and hint variants). Every conversation becomes
one :class:`~deepprune.traces.Trace`:

- ``problem_id``: the CHAMP id (``P_Combinatorics_1``); ``question``: the problem text; ``dataset``: ``"champ"``;
- ``model``: the generating model; ``sample_id`` and ``meta["prompt_setting"]``: the prompt setting;
- ``text``: the model's solution message (the one before the summary request);
- ``answer``: :func:`deepprune.answers.extract_answer` of the final message, a one-sentence summary of the answer
  (``None`` when nothing is extracted, or when the solution hit the length limit and no summary was produced);
- ``finished``: ``False`` for the 261 solutions cut by the length limit;
- ``gold``: the reference answer, ``@@`` math markers removed (kept in ``meta["gold_raw"]``);
- ``meta``: also ``category`` and ``summary`` (the final message).

The package's JSON (73 MB) is parsed once per process and the traces cached; callers get fresh copies.
Unlike the paper's traces, same-answer pairs are the minority here (see ``python -m deepprune.analyze``).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from deepprune.runtime import get_logger
from deepprune.sources import Problem
from deepprune.sources.jsonl import select_traces
from deepprune.traces import Trace

log = get_logger(__name__)

DATASET = "champ"
MODELS: tuple[str, ...] = ("GPT-3.5", "GPT-4", "GPT-4 Turbo", "PaLM 2 Medium")


def champ_json_path(version: str = "v0") -> Path:
    """The dataset file inside the installed ``champ-dataset`` package (found without importing it)."""
    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the champ source needs the `champ-dataset` package: pip install champ-dataset")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_files" / f"{version}.json"
    if not path.is_file():
        raise FileNotFoundError(f"champ-dataset has no {path.name}")
    return path


@lru_cache(maxsize=2)
def _raw_problems(version: str) -> dict[str, dict[str, Any]]:
    with champ_json_path(version).open(encoding="utf-8") as fh:
        return json.load(fh)["problems"]


def _no_answer(text: str) -> str | None:
    return None


def _strip_markers(text: str) -> str:
    return text.replace("@@", "")


@lru_cache(maxsize=4)
def _all_traces(version: str, extract_answers: bool) -> tuple[Trace, ...]:
    extract = _no_answer
    if extract_answers:
        from deepprune.answers import extract_answer as extract  # lazy: the answers module pulls in math-verify

    traces = []
    for pid, p in _raw_problems(version).items():
        question = _strip_markers(p["_raw_text"])
        gold_raw = p["_raw_answer"]
        for key, conv in p["conversations"].items():
            model, setting = key.split("|")
            messages = conv["messages"]
            # [..., Model solution, User "summarize in one sentence", Model summary]
            solution, summary = messages[-3], messages[-1]
            if not solution["role"].startswith("Model.") or not summary["role"].startswith("Model."):
                raise ValueError(f"champ {pid} {key}: unexpected conversation layout")
            summary_text = summary["text"]  # None when the solution hit the length limit
            traces.append(
                Trace(
                    problem_id=pid,
                    text=solution["text"],
                    model=model,
                    sample_id=setting,
                    question=question,
                    gold=_strip_markers(gold_raw),
                    answer=extract(summary_text) if summary_text else None,
                    finished=solution.get("error") is None,
                    dataset=DATASET,
                    meta={
                        "prompt_setting": setting,
                        "category": p["category"],
                        "summary": summary_text,
                        "gold_raw": gold_raw,
                    },
                )
            )
    return tuple(traces)


def load_champ_traces(
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
    version: str = "v0",
    extract_answers: bool = True,
) -> list[Trace]:
    """All CHAMP solutions as traces (19,440), or those of ``models`` on the first ``max_problems`` problems.

    ``extract_answers=False`` leaves ``answer`` as ``None`` (faster; the summary stays in ``meta["summary"]``).
    """
    traces = [_copy(t) for t in _all_traces(version, extract_answers)]
    traces = select_traces(traces, models=models, max_problems=max_problems, where=f"champ {version}")
    log.info("champ: %d traces, %d models", len(traces), len({t.model for t in traces}))
    return traces


def load_champ_problems(max_problems: int | None = None, version: str = "v0") -> list[Problem]:
    """The 270 CHAMP problems with their reference answers (the first ``max_problems`` in dataset order)."""
    problems = [
        Problem(
            problem_id=pid,
            question=_strip_markers(p["_raw_text"]),
            gold=_strip_markers(p["_raw_answer"]),
            dataset=DATASET,
            meta={"category": p["category"], "gold_raw": p["_raw_answer"]},
        )
        for pid, p in _raw_problems(version).items()
    ]
    return problems[:max_problems] if max_problems is not None else problems


def _copy(trace: Trace) -> Trace:
    # the cache must not see callers' edits: a shallow copy plus fresh containers is enough (values are immutable)
    t = copy.copy(trace)
    t.meta = dict(trace.meta)
    t.extra = dict(trace.extra)
    return t
