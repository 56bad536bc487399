"""Multi-sample evaluation outputs as traces: the development sets in ``../shared/data/raw/``, read as they come.

Two layouts of math-evaluation harness output (one JSON object per problem and line, the responses in ``code``):

- **Qwen2.5-Math** (:func:`load_qwen25_math`): one file, ``code`` holds the 8 sampled responses of one problem,
  so a line gives 8 traces of one ``model`` (a fixed name: the file does not say which model wrote it),
  ``sample_id`` 0-7, ``gold`` = ``gt``.
- **SkyThought** (:func:`load_skythought`): a folder with one file per model (``model`` = the file name without
  ``.jsonl[.gz]``), ``code`` a one-element list: the long chain of thought
  ``<|begin_of_thought|> ... <|end_of_thought|> <|begin_of_solution|> ... <|end_of_solution|>``.

Every trace's ``answer`` is extracted here by :func:`deepprune.answers.extract_answer`, never taken from the
harness's ``pred`` (kept in ``meta["harness_pred"]``): for a trace cut at the length limit ``pred`` is the
harness's last-number fallback, not an answer. ``finished`` is left unknown (``None``), as the files give no such
field; the extractor judges cut traces itself (a thought still open at the end: no answer), and the load logs how
many it judged unfinished (:class:`SampleLoadReport`). ``problem_id`` is the line's ``idx`` as a string.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprune.answers import extract_answer, looks_finished
from deepprune.runtime import get_logger
from deepprune.sources.jsonl import select_traces
from deepprune.traces import Trace, TraceFormatError

__all__ = ["QWEN25_MATH_MODEL", "SampleLoadReport", "load_qwen25_math", "load_skythought"]

log = get_logger(__name__)

# The Qwen2.5-Math example file does not name its model; its README says a Qwen2.5-Math-Instruct model sampled it.
QWEN25_MATH_MODEL = "Qwen2.5-Math-Instruct"


@dataclass
class SampleLoadReport:
    """What a load found: traces, those judged cut at the length limit, those without an extractable answer."""

    traces: int = 0
    judged_unfinished: int = 0
    no_answer: int = 0  # includes the judged unfinished (a cut trace has no answer)
    by_model: dict[str, int] = field(default_factory=dict)  # model -> judged unfinished

    def count(self, trace: Trace) -> None:
        self.traces += 1
        if looks_finished(trace.text) is False:
            self.judged_unfinished += 1
            self.by_model[str(trace.model)] = self.by_model.get(str(trace.model), 0) + 1
        if trace.answer is None:
            self.no_answer += 1


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, object) for each non-blank line; unreadable bytes and bad JSON name the line."""
    opener = gzip.open if path.suffix == ".gz" else open
    where = f"{path}:0"
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                where = f"{path}:{lineno}"
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TraceFormatError(where, None, f"not valid JSON ({e.msg} at column {e.colno})") from e
                if not isinstance(obj, dict):
                    raise TraceFormatError(where, None, f"expected a JSON object, got {type(obj).__name__}")
                yield where, obj
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as e:
        raise TraceFormatError(f"{where} (or just after it)", None, f"cannot be read: {e}") from e


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise TraceFormatError(where, key, f"missing (keys present: {sorted(obj)})")
    return obj[key]


def _responses(obj: dict[str, Any], where: str) -> list[str]:
    code = _field(obj, "code", where)
    if not isinstance(code, list) or not code or not all(isinstance(c, str) for c in code):
        raise TraceFormatError(where, "code", f"expected a non-empty list of response strings, got {code!r:.80}")
    return code


def _gold(obj: dict[str, Any], where: str) -> str | None:
    gt = _field(obj, "gt", where)
    if gt is not None and not isinstance(gt, (str, int, float)):
        raise TraceFormatError(where, "gt", f"expected a string or number, got {type(gt).__name__}")
    return None if gt is None else str(gt)


def _harness_pred(obj: dict[str, Any], i: int) -> Any:
    pred = obj.get("pred")
    return pred[i] if isinstance(pred, list) and i < len(pred) else None


def _trace(
    obj: dict[str, Any], where: str, text: str, model: str, sample_id: int | str, index: int, dataset: str
) -> Trace:
    idx = _field(obj, "idx", where)
    if isinstance(idx, bool) or not isinstance(idx, (int, str)):
        raise TraceFormatError(where, "idx", f"expected an integer or string problem index, got {idx!r:.40}")
    question = obj.get("question")
    return Trace(
        problem_id=str(idx),
        text=text,
        model=model,
        sample_id=sample_id,
        question=question if isinstance(question, str) else None,
        gold=_gold(obj, where),
        answer=extract_answer(text),
        finished=None,
        dataset=dataset,
        meta={"harness_pred": _harness_pred(obj, index)},
    )


def _finish(traces: list[Trace], report: SampleLoadReport, where: str, models, max_problems) -> list[Trace]:
    if not traces:
        raise TraceFormatError(where, None, "no traces")
    traces = select_traces(traces, models=models, max_problems=max_problems, where=where)
    for t in traces:
        report.count(t)
    log.info(
        "%s: %d traces, %d judged unfinished (cut inside a thought), %d without an answer",
        where,
        report.traces,
        report.judged_unfinished,
        report.no_answer,
    )
    return traces


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"{what}: {p} does not exist; set source.path, or DEEPPRUNE_SHARED to the folder that holds data/raw/"
        )
    return p


def load_qwen25_math(
    path: str | Path,
    model: str = QWEN25_MATH_MODEL,
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
    dataset: str = "math",
    report: SampleLoadReport | None = None,
) -> list[Trace]:
    """Traces of a Qwen2.5-Math evaluation file: each line's ``code`` responses become traces of ``model``."""
    p = _existing(path, "qwen25_math")
    report = report if report is not None else SampleLoadReport()
    traces = [
        _trace(obj, where, text, model, i, i, dataset)
        for where, obj in _rows(p)
        for i, text in enumerate(_responses(obj, where))
    ]
    return _finish(traces, report, str(p), models, max_problems)


def _model_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def load_skythought(
    path: str | Path,
    pattern: str = "*.jsonl.gz",
    pool_models: str | None = None,
    models: Sequence[str] | None = None,
    max_problems: int | None = None,
    dataset: str | None = None,
    report: SampleLoadReport | None = None,
) -> list[Trace]:
    """Traces of a SkyThought evaluation folder: one file per model (``pattern``), one trace per line.

    ``models`` selects file models. ``pool_models``: when set, every trace's ``model`` becomes this name and its
    file model moves to ``meta["file_model"]``. Each file holds one greedy trace per problem, so per-model groups
    have no pairs; pairs and redundancy (grouped by problem and model) need the models pooled.
    """
    folder = _existing(path, "skythought")
    files = sorted(folder.glob(pattern)) if folder.is_dir() else [folder]
    if not files:
        raise FileNotFoundError(f"skythought: no files matching {pattern!r} in {folder}")
    dataset = dataset if dataset is not None else folder.name
    report = report if report is not None else SampleLoadReport()
    traces = []
    for f in files:
        name = _model_name(f)
        for where, obj in _rows(f):
            code = _responses(obj, where)
            if len(code) != 1:
                raise TraceFormatError(where, "code", f"expected one response per line, got {len(code)}")
            # the file model is the sample id: unique within a problem, also once the models are pooled
            traces.append(_trace(obj, where, code[0], name, name, 0, dataset))
    traces = select_traces(traces, models=models, where=str(folder))
    if pool_models is not None:
        for t in traces:
            t.meta["file_model"] = t.model
            t.model = pool_models
    return _finish(traces, report, str(folder), None, max_problems)
