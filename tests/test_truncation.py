"""Truncation: first-k tokens and first-k reasoning words, checked on hand-worked examples."""

from __future__ import annotations

import pytest

from deepprune.truncation import DEFAULT_REASONING_WORDS, TokenTruncator, WordTruncator


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


def test_token_truncator_keeps_first_k_tokens_as_exact_substring(word_level_tokenizer) -> None:
    cut = TokenTruncator(word_level_tokenizer, k=3)
    # the cut ends where token 3 ends: the original spacing is kept (no decode round trip)
    assert cut("a  b\tc d e") == "a  b\tc"
    assert cut("a b c") == "a b c"  # exactly k tokens: whole text
    assert cut("a b") == "a b"  # shorter: whole text, unchanged
    assert cut("") == ""
    assert cut.count("a b c d") == 4


def test_token_truncator_window_matches_full_tokenisation(word_level_tokenizer) -> None:
    # long texts are tokenised through a character window; the result must equal cutting the full encoding
    text = " ".join("abcdefgh"[i % 8] for i in range(5000))
    cut = TokenTruncator(word_level_tokenizer, k=500)
    assert cut(text) == " ".join("abcdefgh"[i % 8] for i in range(500))
    # very long tokens: the window holds fewer than k tokens, so the full text is tokenised instead
    long_words = " ".join(["a" * 40] * 600)
    vocab_free = TokenTruncator(word_level_tokenizer, k=500)(long_words)
    assert vocab_free == " ".join(["a" * 40] * 500)


def test_token_truncator_slow_tokenizer_decodes() -> None:
    cut = TokenTruncator(CharTokenizer(), k=4)
    assert cut("abcdefg") == "abcd"
    assert cut("abc") == "abc"
    with pytest.raises(ValueError):
        TokenTruncator(CharTokenizer(), k=0)


def test_word_truncator_includes_the_kth_word() -> None:
    cut = WordTruncator(k=2, words=("so", "wait"))
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


def test_word_truncator_defaults() -> None:
    assert {"wait", "thus", "since"} <= set(DEFAULT_REASONING_WORDS)  # the paper's examples
    cut = WordTruncator()
    assert cut.k == 25
    text = " ".join(f"step{i} thus" for i in range(30))
    assert cut(text) == " ".join(f"step{i} thus" for i in range(25))
    assert cut.settings == {"kind": "words", "k": 25, "words": list(DEFAULT_REASONING_WORDS)}


def test_word_truncator_multi_word_entries_and_streaming() -> None:
    cut = WordTruncator(k=1, words=("so that", "so"))
    assert cut("x so that y") == "x so that"  # the longer entry wins at the same position
    cut = WordTruncator(k=2, words=("so",))
    # while text is still arriving, a word at the very end may still grow ("so" -> "some")
    assert cut.cut_index("a so b so", final=False) is None
    assert cut.cut_index("a so b so ", final=False) == 9
    assert cut.cut_index("a so b so") == 9
    with pytest.raises(ValueError):
        WordTruncator(k=1, words=())
