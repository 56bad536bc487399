"""Sources: trace files, problem files (key detection, clear errors), CHAMP, Hugging Face datasets, configs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deepprune.sources import Problem, problems_from_traces
from deepprune.sources.jsonl import load_trace_file
from deepprune.sources.problems import ProblemFormatError, load_problem_file
from deepprune.traces import Trace, TraceFormatError, write_traces

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
CRITICCOT = SHARED_DIR / "data" / "raw" / "criticcot"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- trace files --------------------------------------------------------------------------------------------------


def toy_traces() -> list[Trace]:
    return [
        Trace("p1", "a", model="m1"),
        Trace("p1", "b", model="m2"),
        Trace("p2", "c", model="m1"),
        Trace("p3", "d", model="m2"),
        Trace("p2", "e", model="m2"),
    ]


def test_load_trace_file_filters_models_and_problems(tmp_path: Path) -> None:
    path = write_traces(tmp_path / "t.jsonl", toy_traces())
    assert load_trace_file(path) == toy_traces()
    assert [t.text for t in load_trace_file(path, models=["m2"])] == ["b", "d", "e"]
    # first 2 problem ids in file order are p1, p2 -> every trace of those, p3 dropped
    assert [t.text for t in load_trace_file(path, max_problems=2)] == ["a", "b", "c", "e"]
    assert [t.text for t in load_trace_file(path, models=["m2"], max_problems=2)] == ["b", "d"]
    with pytest.raises(ValueError, match=r"no traces for model\(s\) \['m9'\]; models present: \['m1', 'm2'\]"):
        load_trace_file(path, models=["m9"])


def test_load_trace_file_skip_mode(tmp_path: Path) -> None:
    path = write_traces(tmp_path / "t.jsonl", toy_traces())
    with path.open("a") as fh:
        fh.write('{"problem_id": "p9"}\n')
    with pytest.raises(TraceFormatError, match=r"t\.jsonl:6: field 'text'"):
        load_trace_file(path)
    assert len(load_trace_file(path, on_error="skip")) == 5


def test_problems_from_traces() -> None:
    traces = [Trace("p1", "x"), Trace("p2", "y", question="Q2", gold="2"), Trace("p1", "z", question="Q1", gold="1")]
    assert problems_from_traces(traces) == [Problem("p1", "Q1", "1"), Problem("p2", "Q2", "2")]


# --- problem files ------------------------------------------------------------------------------------------------


def test_problem_file_detects_common_keys(tmp_path: Path) -> None:
    rows = [
        {"id": 0, "problem": "What is 1+1?", "answer": 2, "url": "x/2024_AIME_I"},
        {"id": 1, "problem": "What is 2+2?", "answer": "4", "url": "x/2023_AIME_I"},
    ]
    path = write_jsonl(tmp_path / "aime.jsonl", rows)
    probs = load_problem_file(path)
    assert probs == [
        Problem("0", "What is 1+1?", "2", "aime", {"url": "x/2024_AIME_I"}),  # int id and answer become strings
        Problem("1", "What is 2+2?", "4", "aime", {"url": "x/2023_AIME_I"}),
    ]
    only = load_problem_file(path, match={"url": "2024_AIME"}, id_prefix="aime24/", dataset="aime24")
    assert [(p.problem_id, p.dataset) for p in only] == [("aime24/0", "aime24")]
    assert len(load_problem_file(path, limit=1)) == 1


def test_problem_file_other_key_names_and_line_number_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "Q?", "gold": "7"}, {"question": "R?", "gold": None}])
    assert load_problem_file(path) == [Problem("1", "Q?", "7", "q"), Problem("2", "R?", None, "q")]
    path = write_jsonl(tmp_path / "c.jsonl", [{"body": "Q?", "sol": "7", "key": "k1"}])
    assert load_problem_file(path, question_key="body", answer_key="sol", id_key="key") == [
        Problem("k1", "Q?", "7", "c")
    ]


def test_problem_file_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "Q?", "answer": "1"}])
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:1: no question field \(tried \['problem'"):
        load_problem_file(path)
    path = write_jsonl(tmp_path / "p2.jsonl", [{"problem": "Q?", "answer": "1"}, {"answer": "2"}])
    with pytest.raises(ProblemFormatError, match=r"p2\.jsonl:2: key 'problem' missing"):
        load_problem_file(path, limit=1)  # checked even past the limit
    with pytest.raises(ProblemFormatError, match=r"p2\.jsonl:1: answer key 'gold' missing"):
        load_problem_file(path, answer_key="gold")
    path = write_jsonl(tmp_path / "p3.jsonl", [{"problem": "Q?", "id": 1}, {"problem": "R?", "id": "1"}])
    with pytest.raises(ProblemFormatError, match=r"p3\.jsonl:2: duplicate problem id '1'"):
        load_problem_file(path)
    (tmp_path / "p4.jsonl").write_text('{"problem": "Q?"}\n{"problem": \n')
    with pytest.raises(ProblemFormatError, match=r"p4\.jsonl:2: not valid JSON"):
        load_problem_file(tmp_path / "p4.jsonl")
    with pytest.raises(FileNotFoundError, match="put the file there"):
        load_problem_file(tmp_path / "missing.jsonl")


def test_problem_file_gzip(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"Question": "Q?", "Answer": "B"}) + "\n")
    assert load_problem_file(path) == [Problem("1", "Q?", "B", "p")]


@pytest.mark.parametrize(
    ("config", "n", "first_id", "first_gold"),
    [("aime24", 30, "aime24/60", "204"), ("aime25", 30, "aime25/0", "70"), ("math500", 500, None, None)],
)
def test_problem_configs_on_shared_files(config: str, n: int, first_id: str | None, first_gold: str | None) -> None:
    if not CRITICCOT.is_dir():
        pytest.skip("shared data not present")
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("analyze", overrides=[f"+problems={config}", f"paths.data_dir={CRITICCOT}"])
    problems = instantiate(cfg.problems)
    assert len(problems) == n
    assert len({p.problem_id for p in problems}) == n
    assert all(p.question and p.gold for p in problems)
    if first_id is not None:
        assert (problems[0].problem_id, problems[0].gold) == (first_id, first_gold)


# --- CHAMP --------------------------------------------------------------------------------------------------------


def test_champ_problems() -> None:
    from deepprune.sources.champ import load_champ_problems

    problems = load_champ_problems()
    assert len(problems) == 270
    first = problems[0]
    assert (first.problem_id, first.gold, first.dataset) == ("P_Combinatorics_1", "239", "champ")
    assert first.question.startswith("Let a string consist of digit 1, 2, 3.")
    assert all("@@" not in p.gold and "@@" not in p.question for p in problems)
    assert len(load_champ_problems(max_problems=5)) == 5


def test_champ_traces_all_conversations() -> None:
    from deepprune.sources.champ import MODELS, load_champ_traces

    traces = load_champ_traces(extract_answers=False)
    assert len(traces) == 19_440
    assert sorted({t.model for t in traces}) == sorted(MODELS)
    assert len({t.problem_id for t in traces}) == 270
    assert len({(t.problem_id, t.model, t.sample_id) for t in traces}) == 19_440
    assert len({t.meta["prompt_setting"] for t in traces}) == 18
    assert sum(t.finished is False for t in traces) == 261  # solutions cut by the length limit
    first = traces[0]
    assert (first.problem_id, first.model, first.sample_id, first.dataset) == (
        "P_Combinatorics_1",
        "GPT-3.5",
        "0-Shot",
        "champ",
    )
    assert first.text.startswith("To solve this problem, we can use the concept of recursion.")
    assert first.meta["summary"].startswith("There are 29 valid strings")
    assert first.gold == "239" and first.answer is None
    # callers get copies: editing one does not leak into the next load
    first.meta["prompt_setting"] = "edited"
    assert load_champ_traces(extract_answers=False)[0].meta["prompt_setting"] == "0-Shot"


def test_champ_selection() -> None:
    from deepprune.sources.champ import load_champ_traces

    traces = load_champ_traces(models=["GPT-4", "PaLM 2 Medium"], max_problems=3, extract_answers=False)
    assert len(traces) == 2 * 18 * 3
    with pytest.raises(ValueError, match="GPT-5"):
        load_champ_traces(models=["GPT-5"], extract_answers=False)


def test_champ_answers_come_from_the_summary() -> None:
    pytest.importorskip("deepprune.answers")
    from deepprune.answers import extract_answer
    from deepprune.sources.champ import load_champ_traces

    traces = load_champ_traces(max_problems=2)
    assert len(traces) == 2 * 72
    for t in traces:
        summary = t.meta["summary"]
        assert t.answer == (extract_answer(summary) if summary else None)
    assert sum(t.answer is not None for t in traces) > len(traces) // 2


# --- Hugging Face datasets ----------------------------------------------------------------------------------------


def test_hf_traces_with_column_mapping() -> None:
    datasets = pytest.importorskip("datasets")
    from deepprune.sources.hf import load_hf_traces

    ds = datasets.Dataset.from_dict(
        {
            "qid": [10, 10, 11],
            "response": ["r1", "r2", "r3"],
            "generator": ["m", "m", "n"],
            "finished": [True, False, True],
            "score": [0.5, 0.25, 1.0],
            "text": ["q10", "q10", "q11"],  # an unmapped column that shares a mapped field's name
        }
    )
    columns = {"problem_id": "qid", "text": "response", "model": "generator"}
    with pytest.raises(ValueError, match=r"column\(s\) \['text'\] clash"):
        load_hf_traces(data=ds, columns=columns)
    traces = load_hf_traces(data=ds, columns=columns, drop_columns=["text"])
    assert traces == [
        Trace("10", "r1", model="m", finished=True, extra={"score": 0.5}),
        Trace("10", "r2", model="m", finished=False, extra={"score": 0.25}),
        Trace("11", "r3", model="n", finished=True, extra={"score": 1.0}),
    ]
    assert [t.text for t in load_hf_traces(data=ds, columns=columns, drop_columns=["text"], models=["n"])] == ["r3"]
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not in dataset"):
        load_hf_traces(data=ds, columns={"text": "nope"})
    bad = datasets.Dataset.from_dict({"problem_id": ["a"], "text": ["x"], "num_tokens": [-3]})
    with pytest.raises(TraceFormatError, match=r"row 0: field 'num_tokens'"):
        load_hf_traces(data=bad)


def test_hf_problems_detect_keys() -> None:
    datasets = pytest.importorskip("datasets")
    from deepprune.sources.hf import load_hf_problems

    ds = datasets.Dataset.from_dict({"problem": ["Q1", "Q2"], "answer": ["1", "2"], "unique_id": ["a", "b"]})
    assert load_hf_problems(data=ds, dataset="toy") == [Problem("a", "Q1", "1", "toy"), Problem("b", "Q2", "2", "toy")]
    no_q = datasets.Dataset.from_dict({"body": ["Q1"]})
    with pytest.raises(ProblemFormatError, match=r"row 0: no question field"):
        load_hf_problems(data=no_q)


# --- configs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["champ", "jsonl", "hf"])
def test_source_configs_compose(name: str) -> None:
    from hydra import compose, initialize_config_dir

    from deepprune.runtime import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("analyze", overrides=[f"source={name}"])
    assert cfg.source._target_.startswith("deepprune.sources.")


# --- development sets in ../shared: multi-sample harness outputs (deepprune.sources.samples) ---------------------

SKYTHOUGHT = SHARED_DIR / "data" / "raw" / "skythought-icml" / "amc23"
QWEN25 = SHARED_DIR / "data" / "raw" / "qwen25-math" / "math_cot_dev50.jsonl"
needs_skythought = pytest.mark.skipif(not SKYTHOUGHT.is_dir(), reason=f"{SKYTHOUGHT} not found")
needs_qwen25 = pytest.mark.skipif(not QWEN25.is_file(), reason=f"{QWEN25} not found")


@needs_skythought
def test_skythought_traces_as_the_files_come() -> None:
    from deepprune.sources.samples import SampleLoadReport, load_skythought

    report = SampleLoadReport()
    traces = load_skythought(SKYTHOUGHT, report=report)
    models = sorted({t.model for t in traces})
    assert len(traces) == 400 and len(models) == 10 and len({t.problem_id for t in traces}) == 40
    assert models[0] == "Sky-T1-math-correct-5K-14B" and all(t.sample_id == t.model for t in traces)
    assert all(t.finished is None and t.gold is not None for t in traces)  # nothing added to the files
    boxed = [t for t in traces if "\\boxed" in t.text]
    assert len(boxed) == 293
    # 100 traces cut inside the thought, 3 cut mid-sentence by the model that writes no markers, and 5 whose box
    # sits inside a thought that never closed: judged unfinished, no answer
    assert report.judged_unfinished == 108 and report.no_answer == 110
    cut_in_thought = [t for t in traces if "<|begin_of_thought|>" in t.text and "\\boxed" not in t.text]
    assert len(cut_in_thought) == 100 and all(t.answer is None for t in cut_in_thought)
    # the harness's pred of a cut trace is its last-number fallback; ours is no answer
    assert all(t.meta["harness_pred"] for t in cut_in_thought)
    # on finished boxed traces our answer is the harness's in all but a few spellings
    done = [t for t in boxed if t.answer is not None]
    assert len(done) == 288
    assert sum(t.answer == t.meta["harness_pred"] for t in done) >= 280


@needs_skythought
def test_skythought_pooled_models_keep_the_file_model() -> None:
    from deepprune.sources.samples import load_skythought

    traces = load_skythought(SKYTHOUGHT, pool_models="pool", models=["Sky-T1-math-wrong-5K-14B"], max_problems=3)
    assert [t.problem_id for t in traces] == ["0", "1", "2"]
    assert {t.model for t in traces} == {"pool"} and {t.meta["file_model"] for t in traces} == {
        "Sky-T1-math-wrong-5K-14B"
    }
    with pytest.raises(ValueError, match="no traces for model"):
        load_skythought(SKYTHOUGHT, models=["Sky-T1-nope"])


@needs_skythought
def test_skythought_redundancy_matches_the_boxed_traces() -> None:
    # the requirement: the ratio as the files come within 0.01 of the ratio over boxed traces only,
    # the latter computed here without the extractor's judgement (boxed traces, the last box's content)
    import re

    from deepprune.answers import AnswerChecker
    from deepprune.redundancy import redundancy_table
    from deepprune.sources.samples import load_skythought

    traces = load_skythought(SKYTHOUGHT, pool_models="pool")
    checker = AnswerChecker(timeout_s=10.0)
    rows = redundancy_table(traces, checker=checker)
    ratio = rows[-1].ratio

    def last_box(text: str) -> str:
        start = text.rindex("\\boxed{") + len("\\boxed{")
        depth, i = 1, start
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        return text[start : i - 1]

    same = total = 0
    by_problem: dict[str, list[str]] = {}
    for t in traces:
        if re.search(r"\\boxed\{", t.text):
            by_problem.setdefault(t.problem_id, []).append(last_box(t.text))
    for answers in by_problem.values():
        ids = checker.classes(answers)
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                total += 1
                same += ids[i] == ids[j]
    boxed_ratio = same / total
    assert total == 1044 and abs(boxed_ratio - 0.8362) < 0.002
    assert abs(ratio - boxed_ratio) < 0.01, (ratio, boxed_ratio)
    assert rows[-1].excluded_traces == 110


@needs_qwen25
def test_qwen25_math_eight_samples_per_line() -> None:
    from deepprune.sources.samples import QWEN25_MATH_MODEL, SampleLoadReport, load_qwen25_math

    report = SampleLoadReport()
    traces = load_qwen25_math(QWEN25, report=report)
    assert len(traces) == 400 and len({t.problem_id for t in traces}) == 50
    assert {t.model for t in traces} == {QWEN25_MATH_MODEL} and {t.sample_id for t in traces} == set(range(8))
    first = json.loads(QWEN25.read_text(encoding="utf-8").splitlines()[0])
    assert traces[0].problem_id == str(first["idx"]) and traces[0].gold == first["gt"]
    assert [t.text for t in traces[:8]] == first["code"]
    assert report.judged_unfinished == 0 and report.no_answer == 0  # short chains of thought, all boxed
    # our extraction, not the harness's pred; they agree on most and differ in spelling only ("12 \frac{3}{5}")
    assert sum(t.answer == t.meta["harness_pred"] for t in traces) >= 370


def test_sample_files_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    from deepprune.sources.samples import load_qwen25_math, load_skythought

    good = {"idx": 0, "question": "q", "gt": "1", "code": ["\\boxed{1}", "\\boxed{2}"], "pred": ["1", "2"]}
    path = write_jsonl(tmp_path / "q.jsonl", [good, {**good, "idx": 1, "code": "not a list"}])
    with pytest.raises(TraceFormatError, match=r"q\.jsonl:2: field 'code'"):
        load_qwen25_math(path)
    path.write_text(json.dumps(good) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(TraceFormatError, match=r"q\.jsonl:2: not valid JSON"):
        load_qwen25_math(path)
    traces = load_qwen25_math(write_jsonl(tmp_path / "ok.jsonl", [good]), model="m")
    assert [(t.model, t.sample_id, t.answer, t.gold) for t in traces] == [("m", 0, "1", "1"), ("m", 1, "2", "1")]
    folder = tmp_path / "sky"
    folder.mkdir()
    with gzip.open(folder / "model-a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(good) + "\n")
    with pytest.raises(TraceFormatError, match=r"model-a\.jsonl\.gz:1: field 'code': expected one response"):
        load_skythought(folder)
    (folder / "model-b.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")
    with pytest.raises(TraceFormatError, match=r"model-b\.jsonl\.gz"):
        load_skythought(folder, pattern="model-b*")
    with pytest.raises(FileNotFoundError, match="DEEPPRUNE_SHARED"):
        load_qwen25_math(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("name", ["skythought_amc23", "qwen25_math"])
def test_development_set_configs_use_a_relative_shared_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from deepprune.runtime import CONF_DIR

    monkeypatch.delenv("DEEPPRUNE_SHARED", raising=False)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("analyze", overrides=[f"source={name}"])
    assert cfg.source.path.startswith("../shared/data/raw/")
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} not found")
    monkeypatch.setenv("DEEPPRUNE_SHARED", str(SHARED_DIR))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("analyze", overrides=[f"source={name}", "source.max_problems=2"])
    traces = instantiate(cfg.source)
    assert len({t.problem_id for t in traces}) == 2
