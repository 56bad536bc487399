"""One prefix rule from training to serving (issue 9): the text a judge scores online is the text it trained on.

The judge here counts tokens with MiniLM's WordPiece tokenizer while replay counts the generating model's tokens
with the Qwen tokenizer, as on real data: a rule that confused the two (the old online default, k generated
tokens) would show the judge other texts than training did.
"""

from __future__ import annotations

import logging

import pytest
from helpers import ExactChecker
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from deepprune.judge.datamodule import PairDataModule
from deepprune.judge.export import export_head, read_judge_record
from deepprune.online.generators.replay import ReplayGenerator
from deepprune.online.judges import exported_judge
from deepprune.online.policies import DeepPrunePolicy
from deepprune.runtime import CONF_DIR
from deepprune.sources import problems_from_traces
from deepprune.traces import Trace
from deepprune.truncation import TokenPrefix, WordPrefix, rule_from_record

STEPS = (
    "First, we expand the product and collect like terms: (x+1)(x+2) = x^2 + 3x + 2. ",
    "Wait, the constant term needs care; so we recompute it twice. ",
    "Thus the discriminant is 9 - 8 = 1, hence two real roots exist. ",
    "Since the leading coefficient is positive, the parabola opens upwards. ",
    "Now we substitute x = -1 and x = -2 to check both roots numerically. ",
    "Therefore the sum of the roots is -3 and their product is 2. ",
)


def _traces() -> list[Trace]:
    """4 problems x 6 traces of one model; each trace a different rotation of the steps, two answers per problem."""
    out = []
    for p in range(4):
        for i in range(6):
            steps = STEPS[i:] + STEPS[:i]
            answer = str(p * 10 + i % 2)
            text = f"Problem {p}, attempt {i}. " + "".join(steps) * 2 + f"The answer is \\boxed{{{answer}}}."
            out.append(Trace(problem_id=f"p{p}", text=text, model="m", sample_id=i, answer=answer, gold="0"))
    return out


@pytest.fixture(scope="module")
def siamese_head(deepprune_cache_dir):
    from deepprune.assets import tiny_siamese_dir
    from deepprune.judge.siamese import siamese_head

    return siamese_head(tiny_siamese_dir(deepprune_cache_dir), dtype="float32", segment_max_tokens=64)


@pytest.mark.parametrize("rule", [TokenPrefix(40), WordPrefix(4)], ids=["tokens", "words"])
def test_online_judge_scores_exactly_the_training_text(tmp_path, siamese_head, rule):
    traces = _traces()
    dm = PairDataModule(
        traces, siamese_head, truncation=rule, split="problem", val_fraction=0.25, test_fraction=0.25,
        shuffle_order=False, checker=ExactChecker(), seed=0,
    )  # fmt: skip
    dm.setup()
    # training, validation and (offline) test pairs: every trace, through the rule
    trained_on = {text for ds in dm.datasets.values() for f in ds.features for text in f["texts"]}
    cut = {t.text: dm.rule.cut(t.text) for t in traces}
    assert trained_on == set(cut.values())
    assert all(len(c) < len(t) for t, c in cut.items())  # the rule really cuts these traces

    export = export_head(siamese_head, tmp_path / "export", {"truncation": dm.rule.to_record()})
    judge = exported_judge(export)
    read = []
    score = judge.score
    judge.score = lambda pairs: (read.extend(s.text for pair in pairs for s in pair), score(pairs))[1]
    # default_prefix is what a judge without a rule would get: 5 generated tokens, nothing like training's cut
    policy = DeepPrunePolicy(judge, n=6, tau=0.5, max_clusters=6, k2=2, default_prefix=TokenPrefix(5, None))
    assert policy.rule == dm.rule
    replay = ReplayGenerator(traces, token_counts="tokenizer", shuffle=True)  # Qwen-tokenized generation
    for problem in problems_from_traces(traces):
        policy.run(problem, replay, seed=3)
    assert read and set(read) <= set(cut.values())
    assert set(read) == {cut[t.text] for t in traces}  # every trace was compared at least once
    # offline evaluation reads the export's rule too: the same cut again
    assert all(judge.prefix_rule.cut(t.text) == cut[t.text] for t in traces)


def _compose(name: str, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=True)


def test_default_train_then_online_exported_agree_without_override(tmp_path, siamese_head, caplog):
    from hydra.core.hydra_config import HydraConfig

    train_cfg = _compose("train")
    trained = instantiate(train_cfg.truncation).bind(siamese_head.tokenizer)
    assert trained.to_record() == {"kind": "tokens", "k": 128, "tokenizer": "judge"}
    export = export_head(siamese_head, tmp_path / "export", {"truncation": trained.to_record()})
    online_cfg = _compose("online", "judge=exported", f"judge.export_dir={export}")
    HydraConfig.instance().set_config(online_cfg)
    with caplog.at_level(logging.WARNING, logger="deepprune.online.policies"):
        policy = instantiate(online_cfg.policy)
        assert policy.rule == rule_from_record(read_judge_record(export)["truncation"], siamese_head.tokenizer)
        assert policy.rule.tokenizer.vocab == siamese_head.tokenizer.vocab  # counted with the judge's tokenizer
        # the oracle beside it pays the same prefixes
        oracle = instantiate(
            _compose("online", "policy=oracle", "judge=exported", f"judge.export_dir={export}").policy
        )
        assert oracle.rule == policy.rule
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("deepprune")]
    # an explicit rule still wins, with a warning that it differs from the judge's
    explicit = instantiate(_compose("online", "judge=exported", f"judge.export_dir={export}", "truncation=tokens",
                                    "truncation.k=64").policy)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="deepprune.online.policies"):
        assert explicit.rule.k == 64 and explicit.rule.to_record()["tokenizer"] == "judge"
    assert any("differs from the one the judge was trained with" in r.getMessage() for r in caplog.records)
    # an oracle has no tokenizer of its own: an explicit judge-token rule counts with the judge group's tokenizer
    oracle_explicit = instantiate(_compose("online", "policy=oracle", "judge=exported", f"judge.export_dir={export}",
                                           "truncation=tokens").policy)  # fmt: skip
    assert oracle_explicit.rule.k == 100  # online's CPU scale (scale.token_k)
    assert oracle_explicit.rule.cut(" ".join(["word"] * 300)) == " ".join(["word"] * 100)
