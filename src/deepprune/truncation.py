"""Cut an unfinished trace to the prefix the judge sees (paper section 4.1.1, Table 6 defaults).

Two strategies, both callables ``str -> str`` that return texts shorter than the limit unchanged:

- :class:`TokenTruncator` (fixed-length prefix): the first ``k`` tokens (default 500) under a configured
  tokenizer. With a fast tokenizer the cut is made at the character offset where token ``k`` ends, so the prefix
  is an exact substring of the trace (no decode round-trip changing whitespace); slow tokenizers decode.
- :class:`WordTruncator` (reasoning-step alignment): the text up to and **including** the ``k``-th reasoning word
  (default 25): ``"a so b so c"`` with ``k=2`` gives ``"a so b so"``. The prefix then holds exactly ``k``
  step-opening words, and a streaming generator can stop as soon as the ``k``-th one has arrived. Matching is
  case-insensitive on whole words (``"So"`` and ``"SO"`` count, ``"some"``, ``"also"`` and ``"waited"`` do not).
  Fewer than ``k`` reasoning words: the whole text.

Why these default reasoning words: the paper names *wait*, *thus* and *since* and cites Wang et al. (2025), whose
high-entropy "forking" tokens are exactly such words: reflection (*wait*, *hmm*, *alternatively*, *perhaps*,
*maybe*), contrast (*but*, *however*), inference (*so*, *thus*, *therefore*, *hence*, *since*, *because*),
hypothesis (*suppose*). Chat models that do not "think" aloud (the CHAMP solutions, GPT-4 style) mark steps with
ordinal words instead, so *first*, *next*, *then*, *now* and *finally* are included too: without them a 25-word
budget would often cover the whole solution. Pass ``words=`` to use another list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

DEFAULT_REASONING_WORDS: tuple[str, ...] = (
    "wait",
    "hmm",
    "alternatively",
    "perhaps",
    "maybe",
    "but",
    "however",
    "so",
    "thus",
    "therefore",
    "hence",
    "since",
    "because",
    "suppose",
    "first",
    "next",
    "then",
    "now",
    "finally",
)


class TokenTruncator:
    """The first ``k`` tokens of a text under ``tokenizer`` (a Hugging Face tokenizer), as text."""

    # tokenize only a generous character window first: a token is rarely longer than this many characters,
    # and the tokens well before the window's end do not depend on what follows it
    _CHARS_PER_TOKEN = 12
    _MARGIN_TOKENS = 16

    def __init__(self, tokenizer: Any, k: int = 500) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.tokenizer = tokenizer
        self.k = k
        self._offsets = bool(getattr(tokenizer, "is_fast", False))

    @property
    def settings(self) -> dict[str, Any]:
        return {"kind": "tokens", "k": self.k, "tokenizer": getattr(self.tokenizer, "name_or_path", None)}

    def __call__(self, text: str) -> str:
        window = (self.k + self._MARGIN_TOKENS) * self._CHARS_PER_TOKEN
        if len(text) > window:
            cut = self._cut(text[:window], need_margin=True)
            if cut is not None:
                return cut
        cut = self._cut(text, need_margin=False)
        return text if cut is None else cut

    def count(self, text: str) -> int:
        """Number of tokens in ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _cut(self, text: str, need_margin: bool) -> str | None:
        """The first k tokens of ``text``; None when it has at most k tokens (or too few to trust a window)."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=self._offsets)
        ids = enc["input_ids"]
        if len(ids) <= self.k + (self._MARGIN_TOKENS if need_margin else 0):
            return None
        if self._offsets:
            return text[: enc["offset_mapping"][self.k - 1][1]]
        return self.tokenizer.decode(ids[: self.k], skip_special_tokens=False)


class WordTruncator:
    """The text up to and including the ``k``-th reasoning word (whole words, any case); see the module docstring."""

    def __init__(self, k: int = 25, words: Iterable[str] = DEFAULT_REASONING_WORDS) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.words = tuple(words)
        if not self.words:
            raise ValueError("words must not be empty")
        # longest first so a multi-word entry ("so that") wins over its first word
        alternatives = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    @property
    def settings(self) -> dict[str, Any]:
        return {"kind": "words", "k": self.k, "words": list(self.words)}

    def __call__(self, text: str) -> str:
        end = self.cut_index(text)
        return text if end is None else text[:end]

    def count(self, text: str) -> int:
        """Number of reasoning words in ``text``."""
        return sum(1 for _ in self._pattern.finditer(text))

    def cut_index(self, text: str, final: bool = True) -> int | None:
        """Character index just after the ``k``-th reasoning word, or ``None`` when there are fewer than ``k``.

        ``final=False`` is for text still being generated: a word touching the end of the text is not counted
        yet, because the next characters may extend it (``"so"`` may become ``"some"``).
        """
        for i, m in enumerate(self._pattern.finditer(text), start=1):
            if not final and m.end() == len(text):
                return None
            if i == self.k:
                return m.end()
        return None
