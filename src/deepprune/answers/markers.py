"""Thought and solution markers: which part of a model output holds its answer, and whether the output was cut.

:class:`Markers` lists the tags (``<think>...</think>``, ``<|begin_of_thought|> ... <|end_of_thought|>``,
``<|begin_of_solution|> ... <|end_of_solution|>`` by default); :func:`split_thought` returns the part after the
thinking, or ``None`` when a thought or solution is still open at the end (the trace was cut while thinking);
:func:`cut_mid_sentence` judges a long text without markers that stops mid-sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MARKERS", "Markers", "cut_mid_sentence", "split_thought"]


@dataclass(frozen=True)
class Markers:
    """The tags a model wraps its thinking and its solution in.

    ``thought``: (open, close) pairs around thinking (the answer follows the close). ``solution``: (open, close)
    pairs around the final solution (opened and not closed: the trace was cut). ``end``: strings that end a
    finished output.
    """

    thought: tuple[tuple[str, str], ...] = (("<think>", "</think>"), ("<|begin_of_thought|>", "<|end_of_thought|>"))
    solution: tuple[tuple[str, str], ...] = (("<|begin_of_solution|>", "<|end_of_solution|>"),)
    end: tuple[str, ...] = ("<|end_of_solution|>",)

    def __post_init__(self) -> None:
        for kind in ("thought", "solution"):
            pairs = tuple(tuple(p) for p in getattr(self, kind))
            if any(len(p) != 2 or not all(isinstance(s, str) and s for s in p) for p in pairs):
                raise ValueError(f"Markers.{kind} must be (open, close) pairs of non-empty strings, got {pairs!r}")
            object.__setattr__(self, kind, pairs)
        object.__setattr__(self, "end", tuple(self.end))


DEFAULT_MARKERS = Markers()


# A plain text at least this long is a chain of thought, not an answer; cut mid-sentence, it was cut at the limit.
_TRACE_MIN_CHARS = 1000
_SENTENCE_ENDS = ".!?)]$*\"'`>"  # last characters of a sentence, a math block (\\], \\), $$) or a tag


def split_thought(text: str, markers: Markers = DEFAULT_MARKERS) -> tuple[str | None, bool | None]:
    """The part of ``text`` a final answer is read from, and what the markers say about the trace.

    Returns ``(part, state)``: ``state`` is ``True`` when a thought or solution block was closed or an end marker
    is present, ``False`` when a thought (or a solution) is still open at the end (``part`` is then ``None``: the
    trace was cut), ``None`` when there is no marker at all (``part`` is the whole text). After a closed thought
    ``part`` is what follows the last closing marker; a closed solution block contributes its content.
    """
    state: bool | None = None
    last_close, close_len = -1, 0
    for _, close in markers.thought:
        pos = text.rfind(close)
        if pos > last_close:
            last_close, close_len = pos, len(close)
    last_open = max((text.rfind(open_) for open_, _ in markers.thought), default=-1)
    if last_open > last_close:
        return None, False  # thinking when the text ends
    if last_close >= 0:
        text = text[last_close + close_len :]
        state = True
    for open_, close in markers.solution:
        start = text.rfind(open_)
        if start < 0:
            continue
        end = text.find(close, start + len(open_))
        if end < 0:
            return None, False  # the solution was cut
        text = text[start + len(open_) : end]
        state = True
    if state is None and any(m in text for m in markers.end):
        state = True
    return text, state


def cut_mid_sentence(part: str) -> bool:
    """A text long enough to be a chain of thought that stops where no sentence or formula ends.

    Models that write no thought markers still get cut at the length limit ("... so, for each vertex, there are
    5 vertices"); their last sentence is no answer. Short texts are answers or summaries ("-5", "Answer: C").
    """
    if len(part) < _TRACE_MIN_CHARS:
        return False
    tail = part.rstrip()
    return bool(tail) and tail[-1] not in _SENTENCE_ENDS
