"""Bad settings of the train and collect entries stop at once with the key in the message (issue 10, item 13).

Each case runs the real entry function on the real composed config; the check comes first, so nothing is loaded
(no traces, model, trainer or generator) and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_collect import _cfg
from test_train import make_cfg

from deepprune.collect import main as collect_main
from deepprune.train import train
from deepprune.validation import check_choice, check_int_at_least, check_number_in, check_probability


def test_checks_return_typed_values_and_name_the_key() -> None:
    assert check_int_at_least("n", 3, 1) == 3 and check_int_at_least("n", 4.0, 1) == 4
    assert check_int_at_least("max_problems", None, 1, allow_none=True) is None
    assert check_probability("tau", 1) == 1.0 and isinstance(check_probability("tau", 1), float)
    assert check_choice("reference", None, (None, "cons")) is None
    cases = [
        (lambda: check_int_at_least("n", True, 1), "n=True is invalid: `n` must be an integer >= 1"),
        (lambda: check_int_at_least("n", None, 1), "n=null is invalid"),
        (lambda: check_int_at_least("n", "3", 1), "n='3' is invalid"),
        (lambda: check_number_in("lr", float("nan"), 0, 1), "lr=nan is invalid: `lr` must be in [0, 1]"),
        (lambda: check_probability("tau", "abc"), "tau='abc' is invalid: `tau` must be a number in [0, 1]"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is invalid: `trainer.max_epochs` must be an integer >= 1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid"),
        ("data.batch_size=0", "data.batch_size=0 is invalid"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5 is invalid: `data.val_fraction` must be in [0, 1]"),
        ("seed=-1", "seed=-1 is invalid"),
        ("truncation.k=0", "truncation.k=0 is invalid: `truncation.k` must be an integer >= 1"),
    ],
)
def test_train_rejects_bad_values_before_loading(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        train(make_cfg(tmp_path, override))
    assert message in str(info.value)
    assert not (tmp_path / "config.json").exists()  # stopped before the first thing train() writes


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("max_problems=-1", "max_problems=-1 is invalid: `max_problems` must be an integer >= 1 or null"),
        ("max_problems=0", "max_problems=0 is invalid"),
        ("n=0", "n=0 is invalid: `n` must be an integer >= 1"),
        ("seed=abc", "seed='abc' is invalid"),
    ],
)
def test_collect_rejects_bad_values_before_loading(tmp_path: Path, override: str, message: str) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError) as info:
        collect_main(_cfg([f"output={out}", override]))
    assert message in str(info.value)
    assert not out.exists()


def test_analyze_on_an_empty_trace_file_says_no_traces(tmp_path: Path) -> None:
    import subprocess
    import sys

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    args = ["source=jsonl", f"source.path={empty}", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "deepprune.analyze", *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0  # it used to exit 0 with a ratio of 0.0
    assert f"no traces in {empty}: the file is empty" in proc.stderr
    assert not (tmp_path / "metrics.json").exists()
