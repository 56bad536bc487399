"""The prefix rule: which part of an unfinished trace the judge sees, from training to serving (paper 4.1.1).

One component per strategy, used unchanged by the pair DataModule (training), offline evaluation, and the online
policies, and recorded in every judge export so that ``online judge=exported`` cuts exactly as training did:

- :class:`TokenPrefix` (fixed-length prefix, Table 6: k = 500): the first ``k`` tokens. Which tokenizer counts
  them is part of the rule: ``tokenizer="judge"`` (the default of ``conf/truncation/tokens.yaml``) is the judge's
  own tokenizer, bound by whoever owns the judge (:meth:`PrefixRule.bind`); a path or hub id loads that
  tokenizer; ``tokenizer=None`` counts the GENERATING model's tokens, as a live generator reports them
  (``TraceState.num_tokens``): the cheapest online rule, used for judges that carry no rule of their own (the
  embedding reference), but one that cannot cut a stored text offline. The cut is made at the character offset
  where token ``k`` ends, so the prefix is an exact substring of the trace.
- :class:`WordPrefix` (reasoning-step alignment, Table 6: k = 25): the text up to and **including** the ``k``-th
  reasoning word: ``"a so b so c"`` with ``k=2`` gives ``"a so b so"``. Whole words, any case (``"So"`` counts,
  ``"some"``, ``"also"`` and ``"waited"`` do not). Fewer than ``k`` reasoning words: the whole text.

Every rule answers four questions: :meth:`~PrefixRule.cut` (the prefix of a complete text: what training and
evaluation feed the judge), :meth:`~PrefixRule.reached` (has a growing trace's prefix settled, so generation may
stop for it), :meth:`~PrefixRule.judge_text` (the text the judge scores online: ``cut`` of what was generated),
and :meth:`~PrefixRule.first_index` (replay's fast path: after how many generated tokens ``reached`` first
holds). A prefix has *settled* when more text can no longer change it: for tokens, once the word holding token
``k`` is followed by whitespace and a new word (tokenizers never merge across that); for reasoning words, once a
non-word character follows the ``k``-th word (``"so"`` may still become ``"some"``). So online,
``judge_text(state) == cut(full trace)``: the judge scores exactly what it was trained on. A trace that finishes
before its prefix settles is its own prefix.

:meth:`~PrefixRule.to_record` / :func:`rule_from_record` round-trip a rule through the export record
(``{"kind": "tokens", "k": 128, "tokenizer": "judge"}``).

Why these default reasoning words: the paper names *wait*, *thus* and *since* and cites Wang et al. (2025), whose
high-entropy "forking" tokens are exactly such words: reflection (*wait*, *hmm*, *alternatively*, *perhaps*,
*maybe*), contrast (*but*, *however*), inference (*so*, *thus*, *therefore*, *hence*, *since*, *because*),
hypothesis (*suppose*). Chat models that do not "think" aloud (the CHAMP solutions, GPT-4 style) mark steps with
ordinal words instead, so *first*, *next*, *then*, *now* and *finally* are included too: without them a 25-word
budget would often cover the whole solution. Pass ``words=`` to use another list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepprune.online.generators.base import TraceState

__all__ = ["DEFAULT_REASONING_WORDS", "JUDGE_TOKENIZER", "PrefixRule", "TokenPrefix", "WordPrefix", "rule_from_record"]

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

#: ``TokenPrefix(tokenizer=JUDGE_TOKENIZER)``: count with the judge's own tokenizer (bound by its owner).
JUDGE_TOKENIZER = "judge"

# a new word after whitespace: the pre-token holding the character before it can no longer grow
_SETTLED_RE = re.compile(r"\s+\S")


class PrefixRule:
    """What every prefix rule offers (see the module docstring); subclasses are :class:`TokenPrefix` and
    :class:`WordPrefix`."""

    kind: str = ""
    k: int

    def cut(self, text: str) -> str:  # pragma: no cover - abstract
        """The prefix of a complete text (the whole text when it is shorter than the rule)."""
        raise NotImplementedError

    def __call__(self, text: str) -> str:
        return self.cut(text)

    def count(self, text: str) -> int:  # pragma: no cover - abstract
        """How many units (tokens, reasoning words) of the rule ``text`` holds."""
        raise NotImplementedError

    def settled_end(self, text: str) -> int | None:  # pragma: no cover - abstract
        """For a text still being generated: how many characters it needs for its prefix to have settled
        (``len(text) >= settled_end``), or None when the prefix is not complete yet."""
        raise NotImplementedError

    def to_record(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind(self, tokenizer: Any) -> PrefixRule:
        """This rule with the judge's tokenizer filled in where it asks for it (a no-op for other rules)."""
        return self

    def reached(self, state: TraceState) -> bool:
        """Whether a growing trace's prefix is complete (a finished trace always is)."""
        return state.finished or self.settled_end(state.text) is not None

    def judge_text(self, state: TraceState) -> str:
        """The text the judge scores for a trace whose prefix phase is over: :meth:`cut` of what was generated."""
        return self.cut(state.text)

    def first_index(
        self, text: str, token_ends: Sequence[int], confidences: Sequence[float] | None = None, start: int = 0
    ) -> int:
        """Fewest generated tokens (at least ``start``) after which :meth:`reached` holds, for the complete
        ``text`` whose generated token ``i`` ends at character ``token_ends[i]``; ``len(token_ends)`` when it never
        does before the end. Replay uses it to jump to the token at which live generation would stop."""
        need = self.settled_end(text)
        total = len(token_ends)
        if need is None:
            return total
        for n, char_end in enumerate(token_ends, start=1):
            if char_end >= need:
                return max(start, n)
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrefixRule) and self.to_record() == other.to_record()

    def __hash__(self) -> int:
        return hash(repr(self.to_record()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_record()})"


class TokenPrefix(PrefixRule):
    """The first ``k`` tokens; ``tokenizer`` says whose tokens (see the module docstring)."""

    kind = "tokens"

    # tokenize only a generous character window first: a token is rarely longer than this many characters,
    # and the tokens well before the window's end do not depend on what follows it
    _CHARS_PER_TOKEN = 12
    _MARGIN_TOKENS = 16

    def __init__(self, k: int = 500, tokenizer: Any = JUDGE_TOKENIZER) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"truncation.k must be an integer >= 1, got {k!r}")
        self.k = k
        if isinstance(tokenizer, str) and tokenizer != JUDGE_TOKENIZER:
            from deepprune.judge.backbone import load_tokenizer

            self.spec: str | None = tokenizer
            tokenizer = load_tokenizer(tokenizer)
        elif isinstance(tokenizer, str) or tokenizer is None:
            self.spec, tokenizer = tokenizer, None
        else:
            self.spec = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        self.tokenizer = tokenizer

    @property
    def counts_generated_tokens(self) -> bool:
        """True for ``tokenizer=None``: the generating model's own tokens decide (online only)."""
        return self.spec is None

    def bind(self, tokenizer: Any) -> TokenPrefix:
        if self.spec != JUDGE_TOKENIZER:
            return self
        if tokenizer is None:
            raise ValueError("truncation.tokenizer=judge: this judge has no tokenizer to count tokens with")
        if self.tokenizer is tokenizer:
            return self
        bound = TokenPrefix(self.k, tokenizer)
        bound.spec = JUDGE_TOKENIZER  # the record keeps saying "the judge's tokenizer", portable across machines
        return bound

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "tokenizer": self.spec}

    def _need_tokenizer(self) -> Any:
        if self.tokenizer is None:
            what = "the judge's tokenizer (bind it first)" if self.spec == JUDGE_TOKENIZER else "a tokenizer"
            raise ValueError(
                f"TokenPrefix(k={self.k}, tokenizer={self.spec!r}) needs {what} to cut a stored text; a rule in "
                "generated tokens (tokenizer=null) only works online, where the generator counts"
            )
        return self.tokenizer

    def count(self, text: str) -> int:
        """Number of tokens in ``text`` (no special tokens)."""
        return len(self._need_tokenizer()(text, add_special_tokens=False)["input_ids"])

    def cut(self, text: str) -> str:
        end = self._kth_end(text)
        return text if end is None else text[:end]

    def _kth_end(self, text: str) -> int | None:
        """Character offset where token k ends; None when ``text`` has at most k tokens."""
        window = (self.k + self._MARGIN_TOKENS) * self._CHARS_PER_TOKEN
        if len(text) > window:
            end = self._offset(text[:window], need_margin=True)
            if end is not None:
                return end
        return self._offset(text, need_margin=False)

    def _offset(self, text: str, need_margin: bool) -> int | None:
        tokenizer = self._need_tokenizer()
        fast = bool(getattr(tokenizer, "is_fast", False))
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=fast)
        ids = enc["input_ids"]
        if len(ids) <= self.k + (self._MARGIN_TOKENS if need_margin else 0):
            return None
        if fast:
            return int(enc["offset_mapping"][self.k - 1][1])
        return len(tokenizer.decode(ids[: self.k], skip_special_tokens=False))

    def settled_end(self, text: str) -> int | None:
        end = self._kth_end(text)
        if end is None:
            return None
        settled = _SETTLED_RE.search(text, end)
        return None if settled is None else settled.end()

    def reached(self, state: TraceState) -> bool:
        if self.counts_generated_tokens:
            return state.finished or state.num_tokens >= self.k
        return super().reached(state)

    def judge_text(self, state: TraceState) -> str:
        return state.text if self.counts_generated_tokens else self.cut(state.text)

    def first_index(
        self, text: str, token_ends: Sequence[int], confidences: Sequence[float] | None = None, start: int = 0
    ) -> int:
        if self.counts_generated_tokens:
            return max(start, min(self.k, len(token_ends)))
        return super().first_index(text, token_ends, confidences, start)


class WordPrefix(PrefixRule):
    """The text up to and including the ``k``-th reasoning word (whole words, any case); see the module docstring."""

    kind = "words"

    def __init__(self, k: int = 25, words: Iterable[str] | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"truncation.k must be an integer >= 1, got {k!r}")
        self.k = k
        self.words = tuple(DEFAULT_REASONING_WORDS if words is None else words)
        if not self.words:
            raise ValueError("truncation.words must not be empty (null: the default reasoning words)")
        # longest first so a multi-word entry ("so that") wins over its first word
        alternatives = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "words": list(self.words)}

    def cut(self, text: str) -> str:
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

    def settled_end(self, text: str) -> int | None:
        end = self.cut_index(text, final=False)
        return None if end is None else end + 1  # one more (non-word) character confirms the k-th word


def rule_from_record(record: dict[str, Any], judge_tokenizer: Any = None) -> PrefixRule:
    """The rule an export recorded (:meth:`PrefixRule.to_record`), bound to ``judge_tokenizer`` where it asks for it.

    Exports written before the rule had a record of its own stored the tokenizer's path instead of ``"judge"``; a
    path that no longer exists is read as the judge's tokenizer (it was the default).
    """
    if not isinstance(record, dict) or "kind" not in record or "k" not in record:
        raise ValueError(f"a prefix rule record needs 'kind' and 'k', got {record!r}")
    kind, k = record["kind"], record["k"]
    if kind == "words":
        return WordPrefix(int(k), record.get("words"))
    if kind == "tokens":
        spec = record.get("tokenizer", JUDGE_TOKENIZER)
        if isinstance(spec, str) and spec != JUDGE_TOKENIZER:
            from pathlib import Path

            if judge_tokenizer is not None and (
                not Path(spec).exists() or spec == getattr(judge_tokenizer, "name_or_path", None)
            ):
                spec = JUDGE_TOKENIZER
        return TokenPrefix(int(k), spec).bind(judge_tokenizer)
    raise ValueError(f"prefix rule kind must be 'tokens' or 'words', got {kind!r}")
