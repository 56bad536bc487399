"""Replay generator: trace selection, token-exact prefixes, counting rules, confidences, answers."""

from __future__ import annotations

import pytest

from deepprune.online.generators.base import TraceState, derive_seed
from deepprune.online.generators.replay import ReplayGenerator, WhitespaceTokenizer
from deepprune.sources import Problem
from deepprune.traces import Trace
from deepprune.truncation import TokenPrefix, WordPrefix

P = Problem("p1", "question?", gold="4")


def make(texts, answers=None, pid="p1", **kw) -> list[Trace]:
    answers = answers or ["4"] * len(texts)
    return [
        Trace(pid, t, model="m", sample_id=i, answer=a, gold="4", question="question?", **kw)
        for i, (t, a) in enumerate(zip(texts, answers))
    ]


def gen(traces, **kw) -> ReplayGenerator:
    kw.setdefault("shuffle", False)
    return ReplayGenerator(traces, tokenizer=WhitespaceTokenizer(), **kw)


def test_start_returns_fresh_states_with_derived_seeds():
    g = gen(make(["a b c", "d e"]))
    s = g.start(P, 2, seed=3)
    assert [(x.index, x.seed, x.text, x.num_tokens, x.finished) for x in s] == [
        (0, derive_seed(3, 0), "", 0, False),
        (1, derive_seed(3, 1), "", 0, False),
    ]
    assert derive_seed(3, 1) == 3 * 100003 + 1


def test_prefix_by_tokens_then_to_the_end():
    g = gen(make(["one two three four five", "six seven"]))
    s = g.start(P, 2, seed=0)
    g.advance(s, until=TokenPrefix(3, tokenizer=None).reached)
    assert [(x.text, x.num_tokens, x.finished) for x in s] == [("one two three", 3, False), ("six seven", 2, True)]
    assert s[1].answer == "4" and s[0].answer is None
    g.advance(s)
    assert [(x.text, x.num_tokens, x.finished) for x in s] == [
        ("one two three four five", 5, True),
        ("six seven", 2, True),
    ]


def test_prefix_by_reasoning_words_matches_token_by_token_checking():
    text = "so we start. Wait, that is wrong. Thus x=4 since waiting helps"
    rule = WordPrefix(2, words=("wait", "thus", "since"))
    g = gen(make([text]))
    s = g.start(P, 1, seed=0)
    g.advance(s, until=rule.reached)  # fast path
    slow = gen(make([text]))
    t = slow.start(P, 1, seed=0)
    slow.advance(t, until=lambda st: rule.reached(st))  # a plain callable: token-by-token
    # the 2nd word ("Thus") counts once the next character arrives, i.e. with the token after it
    assert s[0].text == t[0].text == "so we start. Wait, that is wrong. Thus x=4"
    assert s[0].num_tokens == t[0].num_tokens == 9
    assert rule.cut(text) == rule.judge_text(s[0]) == "so we start. Wait, that is wrong. Thus"


def test_sampling_errors_and_allow_fewer():
    traces = make([f"t{i} x" for i in range(5)])
    g = gen(traces)
    assert len(g.start(P, 5, seed=0)) == 5
    a = gen(traces).start(P, 3, seed=11)
    b = gen(traces).start(P, 3, seed=11)
    assert len(a) == 3
    with pytest.raises(ValueError, match="has 5 traces, n=6"):
        g.start(P, 6, seed=0)
    assert len(gen(traces, allow_fewer=True).start(P, 6, seed=0)) == 5
    ga, gb = gen(traces), gen(traces)
    sa, sb = ga.start(P, 3, seed=11), gb.start(P, 3, seed=11)
    ga.advance(sa)
    gb.advance(sb)
    assert [x.text for x in sa] == [x.text for x in sb]  # same seed, same sample
    assert len(a) == len(b)
    with pytest.raises(KeyError):
        g.start(Problem("nope", "q"), 1, seed=0)


def test_shuffle_is_a_seeded_permutation_of_all_traces():
    traces = make([f"t{i}" for i in range(6)])
    texts = []
    for _ in range(2):
        g = ReplayGenerator(traces, tokenizer=WhitespaceTokenizer(), shuffle=True)
        s = g.start(P, 6, seed=5)
        g.advance(s)
        texts.append([x.text for x in s])
    assert texts[0] == texts[1]
    assert sorted(texts[0]) == [f"t{i}" for i in range(6)]


def test_num_tokens_from_the_trace_and_proportional_reveal():
    traces = make(["abcdefghij"], num_tokens=5)
    g = gen(traces)
    s = g.start(P, 1, seed=0)
    g.advance(s, until=TokenPrefix(2, tokenizer=None).reached)
    assert (s[0].num_tokens, s[0].text) == (2, "abcd")
    g.advance(s)
    assert (s[0].num_tokens, s[0].finished) == (5, True)
    # token_counts=tokenizer ignores num_tokens
    g2 = gen(make(["abcdefghij"], num_tokens=5), token_counts="tokenizer")
    s2 = g2.start(P, 1, seed=0)
    g2.advance(s2)
    assert s2[0].num_tokens == 1


def test_token_confidences_are_revealed_with_the_tokens():
    traces = make(["a b c d"], token_confidences=[1.0, 2.0, 3.0, 4.0])
    g = gen(traces)
    s = g.start(P, 1, seed=0)
    g.advance(s, until=TokenPrefix(3, tokenizer=None).reached)
    assert s[0].token_confidences == [1.0, 2.0, 3.0]
    bad = gen(make(["a b"], token_confidences=[1.0, 2.0, 3.0], num_tokens=2))
    with pytest.raises(ValueError, match="3 token_confidences but 2 tokens"):
        bad.start(P, 1, seed=0)


def test_release_stops_a_trace_and_peek_knows_the_final_answer():
    g = gen(make(["a b c", "d e f"], answers=["1", "2"]))
    s = g.start(P, 2, seed=0)
    g.advance(s, until=TokenPrefix(1, tokenizer=None).reached)
    g.release([s[0]])
    g.advance(s)
    assert (s[0].num_tokens, s[0].finished) == (1, False)
    assert (s[1].num_tokens, s[1].finished) == (3, True)
    assert g.peek_answer(s[0]) == "1"
    assert (s[0].answer, s[1].answer) == (None, "2")


def test_missing_answer_is_extracted_from_the_text():
    g = gen(make(["so the answer is \\boxed{12}"], answers=[None]))
    s = g.start(P, 1, seed=0)
    g.advance(s)
    assert s[0].answer == "12"


def test_problems_and_models():
    traces = make(["a"], pid="p1") + make(["b"], pid="p2")
    traces[1].model = "other"
    g = gen(traces)
    assert [p.problem_id for p in g.problems()] == ["p1", "p2"]
    assert [p.problem_id for p in gen(traces, models=["m"]).problems()] == ["p1"]
    with pytest.raises(ValueError, match="no traces of model"):
        gen(traces, models=["zzz"])


def test_qwen_tokenizer_counts_by_default():
    g = ReplayGenerator(make(["Hello world, this is a test."]), shuffle=False)
    s = g.start(P, 1, seed=0)
    g.advance(s, until=TokenPrefix(2, tokenizer=None).reached)
    assert s[0].text == "Hello world"
    g.advance(s)
    assert s[0].num_tokens == 8  # Hello| world|,| this| is| a| test|.
    assert isinstance(s[0], TraceState)
