"""The prefix rule: first-k tokens and first-k reasoning words, checked on hand-worked examples."""

from __future__ import annotations

import pytest

from deepprune.truncation import DEFAULT_REASONING_WORDS, TokenPrefix, WordPrefix, rule_from_record


@pytest.fixture(scope="module")
def word_level_tokenizer():
    """A fast tokenizer with one token per whitespace-separated word (so token counts can be worked by hand)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate("a b c d e f g h".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


class CharTokenizer:
    """A slow (non-fast) tokenizer: one token per character; exercises the decode path."""

    is_fast = False

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False) -> dict:
        assert not return_offsets_mapping
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)


def test_token_prefix_keeps_first_k_tokens_as_exact_substring(word_level_tokenizer) -> None:
    cut = TokenPrefix(3, word_level_tokenizer)
    # the cut ends where token 3 ends: the original spacing is kept (no decode round trip)
    assert cut("a  b\tc d e") == "a  b\tc"
    assert cut("a b c") == "a b c"  # exactly k tokens: whole text
    assert cut("a b") == "a b"  # shorter: whole text, unchanged
    assert cut("") == ""
    assert cut.count("a b c d") == 4


def test_token_prefix_window_matches_full_tokenisation(word_level_tokenizer) -> None:
    # long texts are tokenised through a character window; the result must equal cutting the full encoding
    text = " ".join("abcdefgh"[i % 8] for i in range(5000))
    cut = TokenPrefix(500, word_level_tokenizer)
    assert cut(text) == " ".join("abcdefgh"[i % 8] for i in range(500))
    # very long tokens: the window holds fewer than k tokens, so the full text is tokenised instead
    long_words = " ".join(["a" * 40] * 600)
    vocab_free = TokenPrefix(500, word_level_tokenizer)(long_words)
    assert vocab_free == " ".join(["a" * 40] * 500)


def test_token_prefix_slow_tokenizer_decodes() -> None:
    cut = TokenPrefix(4, CharTokenizer())
    assert cut("abcdefg") == "abcd"
    assert cut("abc") == "abc"
    with pytest.raises(ValueError):
        TokenPrefix(0, CharTokenizer())


def test_word_prefix_includes_the_kth_word() -> None:
    cut = WordPrefix(k=2, words=("so", "wait"))
    assert cut("a so b so c") == "a so b so"
    assert cut("Wait, x. So y. Then z.") == "Wait, x. So"  # case-insensitive
    # whole words only: "some", "also", "waited" and "so-" prefixes inside words do not count
    assert cut("some also waited wait x so y") == "some also waited wait x so"
    # punctuation is a word boundary
    assert cut("wait...so!") == "wait...so"
    # fewer than k reasoning words: the whole text
    assert cut("one so only") == "one so only"
    assert cut("") == ""
    assert cut.count("So so SO sober") == 3


def test_word_prefix_defaults() -> None:
    assert {"wait", "thus", "since"} <= set(DEFAULT_REASONING_WORDS)  # the paper's examples
    cut = WordPrefix()
    assert cut.k == 25
    text = " ".join(f"step{i} thus" for i in range(30))
    assert cut(text) == " ".join(f"step{i} thus" for i in range(25))
    assert cut.to_record() == {"kind": "words", "k": 25, "words": list(DEFAULT_REASONING_WORDS)}


def test_word_prefix_multi_word_entries_and_streaming() -> None:
    cut = WordPrefix(k=1, words=("so that", "so"))
    assert cut("x so that y") == "x so that"  # the longer entry wins at the same position
    cut = WordPrefix(k=2, words=("so",))
    # while text is still arriving, a word at the very end may still grow ("so" -> "some")
    assert cut.cut_index("a so b so", final=False) is None
    assert cut.cut_index("a so b so ", final=False) == 9
    assert cut.cut_index("a so b so") == 9
    with pytest.raises(ValueError):
        WordPrefix(k=1, words=())


def test_token_prefix_settles_only_when_a_new_word_follows_token_k(word_level_tokenizer) -> None:
    from deepprune.online.generators.base import TraceState

    rule = TokenPrefix(3, word_level_tokenizer)
    # token 3 ("c") ends at 5; the prefix settles once whitespace and the next word's first character follow it
    assert rule.settled_end("a b c") is None  # exactly k tokens: "c" may still grow into "cd"
    assert rule.settled_end("a b c ") is None  # whitespace, but the run may go on
    assert rule.settled_end("a b c d") == 7
    assert rule.settled_end("a b c  d e f") == 8
    growing = TraceState(0, 0, text="a b c d", num_tokens=9)
    assert rule.reached(growing) and rule.judge_text(growing) == "a b c"
    assert rule.reached(TraceState(0, 0, text="a b", finished=True))  # a finished trace is its own prefix
    assert not rule.reached(TraceState(0, 0, text="a b c", num_tokens=99))  # generated tokens do not decide
    # replay's fast path: generated token i ends at character ends[i] (here one character per token)
    text = "a b c d e"
    ends = list(range(1, len(text) + 1))
    assert rule.first_index(text, ends) == 7  # the first 7 characters hold the settled prefix
    assert rule.first_index(text, ends, start=8) == 8
    assert rule.first_index("a b", [1, 2, 3]) == 3  # never settles: the whole trace


def test_token_prefix_in_generated_tokens_is_online_only() -> None:
    from deepprune.online.generators.base import TraceState

    rule = TokenPrefix(4, tokenizer=None)
    assert rule.counts_generated_tokens and rule.to_record() == {"kind": "tokens", "k": 4, "tokenizer": None}
    state = TraceState(0, 0, text="whatever was generated", num_tokens=4)
    assert rule.reached(state) and rule.judge_text(state) == "whatever was generated"
    assert not rule.reached(TraceState(0, 0, text="x", num_tokens=3))
    assert rule.first_index("", [0] * 10, start=2) == 4 and rule.first_index("", [0] * 3) == 3
    with pytest.raises(ValueError, match="generated tokens"):
        rule.cut("a stored text cannot be cut in tokens nobody counted")


def test_word_prefix_settles_after_a_non_word_character() -> None:
    rule = WordPrefix(2, words=("so",))
    assert rule.settled_end("a so b so") is None  # "so" may become "some"
    assert rule.settled_end("a so b so,") == 10
    assert rule.first_index("a so b so, c", list(range(1, 13))) == 10
    assert rule.first_index("a so b so", list(range(1, 10))) == 9  # ends on the k-th word: the whole trace


def test_rules_round_trip_through_their_records(word_level_tokenizer) -> None:
    judge_rule = TokenPrefix(7).bind(word_level_tokenizer)
    assert judge_rule.to_record() == {"kind": "tokens", "k": 7, "tokenizer": "judge"}
    back = rule_from_record(judge_rule.to_record(), word_level_tokenizer)
    assert back == judge_rule and back.cut("a b c d e f g h a") == judge_rule.cut("a b c d e f g h a")
    words = WordPrefix(3, ("wait", "so"))
    assert rule_from_record(words.to_record()) == words
    assert rule_from_record({"kind": "tokens", "k": 2, "tokenizer": None}).counts_generated_tokens
    # exports written before the rule had its own record stored the judge tokenizer's machine path
    legacy = rule_from_record({"kind": "tokens", "k": 2, "tokenizer": "/no/such/dir"}, word_level_tokenizer)
    assert legacy.to_record()["tokenizer"] == "judge" and legacy.cut("a b c") == "a b"
    with pytest.raises(ValueError, match="bind"):
        TokenPrefix(3).cut("a b c d")  # the judge's tokenizer was never bound
    with pytest.raises(ValueError, match="this judge has no tokenizer"):
        TokenPrefix(3).bind(None)  # e.g. the oracle: said at once, not when the first prefix is cut
    with pytest.raises(ValueError, match="kind"):
        rule_from_record({"kind": "chars", "k": 3})
