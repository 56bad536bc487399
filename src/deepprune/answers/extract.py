"""Final-answer extraction: the answer a model output states, and whether the output looks finished.

``extract_answer(text, finished=None)`` reads, in order:

1. **Thought and solution markers** (:class:`Markers`, configurable): ``<think>...</think>`` and
   ``<|begin_of_thought|> ... <|end_of_thought|>`` enclose thinking, so only what follows the last closing marker
   is read; a thought still open at the end of the text means the trace was cut while thinking: no answer.
   ``<|begin_of_solution|>`` opened and never closed (``<|end_of_solution|>``) is cut too.
2. The last ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces (``\\boxed 5`` too). An empty box is no answer.
3. Only where the trace is not known or judged cut (``finished`` not ``False``; with ``None``, a long text
   without markers that stops mid-sentence is judged cut, see :func:`looks_finished`): an answer cue ("The final
   answer is X", "Answer: X", "**Answer:** X", "the correct option is D"), else the value a one-sentence summary
   states ("Therefore, the minimum value is 3.", "Yes, ..."). These fallbacks
   read the last words of a text, which on a trace cut at the length limit are half a sentence, not an answer.

:func:`looks_finished` judges a text alone: ``True`` (a box after the thinking, a closed thought, an end-of-solution
marker), ``False`` (a thought or solution still open, or a text of 1,000 characters or more without markers that
stops mid-sentence), ``None`` (plain text that cannot be judged, such as CHAMP's one-sentence summaries, which
keep the fallbacks).

Extraction is linear in the length of the text and bounded: braces are matched in one pass, answer cues and the
summary sentence are read from bounded windows (an answer is short), and no pattern backtracks over a run of
characters more than once.
"""

from __future__ import annotations

import re

from deepprune.answers.markers import DEFAULT_MARKERS, Markers, cut_mid_sentence, split_thought

__all__ = [
    "DEFAULT_MARKERS",
    "Markers",
    "extract_answer",
    "looks_finished",
    "split_thought",
    "strip_delims",
    "strip_quotes",
]


# Bounds that keep extraction linear: an answer sentence is short, and only the last cues can hold the answer.
_ANSWER_WINDOW = 2000  # characters read after a cue
_SUMMARY_WINDOW = 1500  # characters of the last line read as the summary sentence
_MAX_CUES = 20  # cues tried, from the last
_MAX_STRIP = 8  # rounds of delimiter stripping
_MAX_CHOICE_LEN = 40  # a multiple-choice answer is a letter with some decoration
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))

# Cues after which the answer follows; the last cue in the text wins.
_CUE_RE = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|\*\*\s*(?:final\s+)?answer\s*:?\s*\*\*\s*:?|(?:^|\n)[^\S\n]*(?:final\s+)?answer\s*:"
    r"|the\s+(?:correct\s+)?answer\s+(?:is|would\s+be|should\s+be)\s*:?"
    r"|the\s+correct\s+(?:option|choice)\s+is\s*:?)",
    re.IGNORECASE,
)
_CHOICE_RE = re.compile(
    r"^\s*(?:\*\*)?\s*(?i:option|choice)?\s*[\(\[]?\s*([A-J])\s*[\)\]]?\s*(?:\*\*)?\s*[.:]?\s*(?:\*\*)?$"
)
_LAST_LINE_CHOICE_RE = re.compile(r"^\s*(?:\*\*)?\s*\(([A-J])\)\s*(?:\*\*)?\s*\.?\s*$")
_HOPE_RE = re.compile(r"I hope (?:it|this) is correct", re.IGNORECASE)

# Summary sentences: clauses after the answer that explain it, and the verbs that introduce it.
_TRAILING_CLAUSE_RE = re.compile(
    r"(?:,\s*|;\s*|\s-+\s\s*|\s+)(?:which|where|when|whenever|since|because|as\s+(?:it|this|the|a|we|shown)|attained"
    r"|achieved|occurring|obtained|reached|given\s+that|if\s+and\s+only|with\s+equality|so\s+that|that\s+is"
    r"|i\.e\.|for\s+(?:all|any|every|each|some|n|x|k|the|positive|real|integer|non)|in\s+(?:this|the|which)"
    r"|at\s+(?:x|n|a|the)|by\s+(?:the|using|applying)|using|due\s+to|meaning|hence|thus|therefore)\b.*$",
    re.IGNORECASE | re.DOTALL,
)
_VERB_RE = re.compile(
    r"\s(?:(?:is|are|was|were|be)(?:\s+(?:equal\s+to|given\s+by|approximately|about|exactly|precisely))?"
    r"(?:\s+the\s+(?:expression|formula|binomial\s+coefficient|number|value|sum|product|integer))?"
    r"|equals?|becomes?|gives?|yields?|can\s+be\s+(?:expressed|written|factored|simplified)\s+as)\s*:?\s",
    re.IGNORECASE,
)
_NONE_RE = re.compile(r"^(?:there\s+(?:are|is|exist|exists)\s+no|no\s+such)\b", re.IGNORECASE)
_IMPOSSIBLE_RE = re.compile(r"^it\s+is\s+(?:not\s+possible|impossible)\b", re.IGNORECASE)
_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_COUNT_LEAD_RE = re.compile(
    r"^(?:at\s+(?:most|least),?|only|exactly|all(?:\s+of)?(?:\s+the)?)\s+(?:the\s+first\s+)?(\d+|"
    + "|".join(_NUMBER_WORDS)
    + r")\b",
    re.IGNORECASE,
)
# Weaker verbs, used only when none of _VERB_RE gives a value: "... has 2,001,000 terms", "holds for 98 values"
_WEAK_VERB_RE = re.compile(r"\s(?:has|have|will\s+have|holds\s+for|contains?|in)\s", re.IGNORECASE)
_NEGATED_RE = re.compile(
    r"\b(?:cannot|can\s+not|can't|does\s+not|do\s+not|is\s+not|are\s+not|has\s+no|have\s+no)\b", re.I
)
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
# Words that may appear inside a plain-text math answer (sqrt(2), C(n, 4), 1 and 2, 3 mod 7, ...).
MATH_WORDS = frozenset(
    "sqrt cbrt sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp floor ceil gcd lcm max "
    "min mod pi inf infty infinity binom choose and or to pm mp cdot times frac dfrac tfrac le ge lt gt ne neq leq "
    "geq in cup cap sum prod lim mathbb mathrm text left right".split()
)
WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)


def _brace_ends(text: str) -> dict[int, int]:
    """For every ``{`` that closes, the index just past its ``}``; one pass, ``\\x`` escapes skipped."""
    ends: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        c = m.group(0)
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            ends[stack.pop()] = m.end()
    return ends


def _last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None if there is none.

    Linear: the braces are matched once for the whole text, not once per box (an unclosed box used to be
    rescanned to the end of the text for every box before it).
    """
    boxes = list(_BOXED_RE.finditer(text))
    if not boxes:
        return None
    ends: dict[int, int] | None = None
    for m in reversed(boxes):
        j = m.end()
        if j < len(text) and text[j] == "{":
            if ends is None:
                ends = _brace_ends(text)
            end = ends.get(j)
            if end is not None:
                return text[j + 1 : end - 1]
        elif m.group(0).endswith((" ", "\t")) and j < len(text):
            tok = re.match(r"[^\s$]+", text[j : j + _ANSWER_WINDOW])
            if tok:
                return tok.group(0)
    return None


def strip_delims(s: str) -> str:
    s = s.strip()
    changed = True
    rounds = 0
    while changed and s and rounds < _MAX_STRIP:
        changed = False
        rounds += 1
        for left, right in _DELIMS:
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                inner = s[len(left) : len(s) - len(right)]
                # "$a$ and $b$" is not one math span
                if left == "$" and "$" in inner:
                    continue
                s = inner.strip()
                changed = True
                break
    return s


def _first_sentence(s: str) -> str:
    """Cut ``s`` at the end of its first sentence or line, ignoring dots inside math and inside numbers."""
    depth = 0
    in_dollar = False
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            if s[i + 1] in "([":
                depth += 1
            elif s[i + 1] in ")]":
                depth = max(0, depth - 1)
            i += 2
            continue
        if c == "$":
            in_dollar = not in_dollar
        elif c in "{":
            depth += 1
        elif c in "}":
            depth = max(0, depth - 1)
        elif c == "\n" and not in_dollar and depth == 0:
            if s[:i].strip():
                return s[:i]
        elif c == "." and not in_dollar and depth == 0:
            nxt = s[i + 1] if i + 1 < len(s) else ""
            if nxt == "" or nxt.isspace():
                return s[:i]
        i += 1
    return s


_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}


def strip_quotes(s: str) -> str:
    """``"berl"`` and ``'berl'`` -> ``berl``: one pair of matching quotes around the whole answer (none inside)."""
    if len(s) >= 3 and _QUOTES.get(s[0]) == s[-1] and s[0] not in s[1:-1] and s[-1] not in s[1:-1]:
        return s[1:-1].strip()
    return s


def _clean(ans: str) -> str | None:
    """Tidy an extracted answer: drop delimiters, trailing punctuation, quotes, markdown bold, thousands separators."""
    hope = _HOPE_RE.search(ans)
    if hope:
        ans = ans[: hope.start()]
    ans = ans.strip().strip("*").strip()
    ans = strip_delims(ans)
    end = len(ans)
    while end and (ans[end - 1].isspace() or ans[end - 1] in ".,;:!"):
        end -= 1
    ans = ans[:end]
    ans = strip_quotes(ans)
    ans = strip_delims(ans)
    ans = ans.replace("{,}", "")
    if _THOUSANDS_RE.match(ans):
        ans = ans.replace(",", "")
    if ans.startswith("=") and not ans.startswith("=="):
        ans = ans[1:].strip()
    return ans or None


def _choice(ans: str) -> str | None:
    if len(ans) > _MAX_CHOICE_LEN:  # keeps the anchored pattern's backtracking bounded
        return None
    m = _CHOICE_RE.match(ans)
    return m.group(1) if m else None


def _cue_answer(text: str) -> str | None:
    matches = list(_CUE_RE.finditer(text))
    for m in reversed(matches[-_MAX_CUES:]):
        rest = text[m.end() : m.end() + _ANSWER_WINDOW].lstrip(" \t:")
        if not rest.strip():
            continue
        boxed = _last_boxed(_first_sentence(rest))
        ans = _clean(boxed if boxed is not None else _first_sentence(rest))
        if ans is None:
            continue
        # "The correct option is (D) 42" -> D
        lead = re.match(r"^\(?([A-J])\)(?:\s|$)", ans)
        if lead and re.search(r"option|choice", m.group(0), re.IGNORECASE):
            return lead.group(1).upper()
        return _choice(ans) or ans
    return None


def _is_math_token(tok: str) -> bool:
    core = tok.strip(".,;:")
    if not core:
        return False
    if re.search(r"[\d\\$^_=+\-*/()\[\]{}<>|!]", core):
        return True
    if len(core) == 1:
        return True  # a variable or a choice letter
    return core.lower() in MATH_WORDS


def _leading_math(seg: str) -> str | None:
    """The first run of math in ``seg`` ("78,732 possible ways" -> "78,732"), skipping leading prose."""
    seg = seg.strip()
    # a math span at the start is the answer as written
    m = _MATH_SPAN_RE.match(seg)
    if m:
        return next(g for g in m.groups() if g is not None)
    tokens = re.findall(r"\S+", seg)
    # at most a few words of prose before the value ("the integer 7"); "a"/"an" are articles here
    start = next(
        (
            i
            for i, t in enumerate(tokens[:4])
            if _is_math_token(t) and t.lower() not in {"and", "or", "to", "a", "an", "in"}
        ),
        None,
    )
    if start is None:
        return None
    # a $...$ span that opens later in the segment is taken whole
    if "$" in tokens[start] or "\\(" in tokens[start]:
        rest = " ".join(tokens[start:])
        m = _MATH_SPAN_RE.search(rest)
        if m:
            return next(g for g in m.groups() if g is not None)
    end = start
    for i in range(start, len(tokens)):
        if not _is_math_token(tokens[i]):
            break
        end = i + 1
    while end > start and tokens[end - 1].lower().strip(".,;:") in {"and", "or", "to"}:
        end -= 1
    return " ".join(tokens[start:end])


def _summary_answer(text: str) -> str | None:
    """The value a one-sentence summary states: "..., the minimum value is 3." -> "3"; "Yes, ..." -> "Yes"."""
    lines = text.rstrip().splitlines()
    if not lines:
        return None
    # a one-sentence summary is short: the end of a very long last line is enough
    last = lines[-1][-_SUMMARY_WINDOW:].strip()
    # the last sentence of the last line
    sentences = re.split(r"(?<=[a-z\)\]$])\.\s+(?=[A-Z])", last)
    sent = sentences[-1].strip()
    m = _LAST_LINE_CHOICE_RE.match(sent)
    if m:
        return m.group(1).upper()
    lead = re.match(r"^(?:\*\*)?\s*(yes|no)\b", sent, re.IGNORECASE)
    if lead:
        return lead.group(1).capitalize()
    if _NONE_RE.match(sent):
        return "0"  # "There are no such pairs." states a count of zero
    if _IMPOSSIBLE_RE.match(sent):
        return "No"
    body = sent.rstrip(" .")
    math_spans = [m.span() for m in _MATH_SPAN_RE.finditer(body)]
    verbs = [v for v in _VERB_RE.finditer(body) if not any(a <= v.start() < b for a, b in math_spans)]
    # The answer follows the last verb, minus a trailing explanation ("..., which occurs when x = 0")
    for v in reversed(verbs):
        seg = _TRAILING_CLAUSE_RE.sub("", body[v.end() :])
        ans = _leading_math(seg)
        if ans:
            return _clean(ans)
    # a bare value ("0", "a=3, b=-7, c=4") or a value that leads the sentence ("3 is the only possible value")
    head = re.sub(r"\s*\((?:i\.e\.|e\.g\.|that is|namely)[^)]*\)", "", body, flags=re.IGNORECASE)
    first = re.match(r"\S+", head)
    if first and _is_math_token(first.group(0)) and first.group(0).lower() not in MATH_WORDS | {"a", "i"}:
        ans = _leading_math(head)
        if ans:
            return _clean(ans)
    count = _COUNT_LEAD_RE.match(sent)
    if count:
        return _NUMBER_WORDS.get(count.group(1).lower(), count.group(1))
    for v in reversed([v for v in _WEAK_VERB_RE.finditer(body) if not any(a <= v.start() < b for a, b in math_spans)]):
        seg = _TRAILING_CLAUSE_RE.sub("", body[v.end() :])
        tok = re.match(r"^(?:an?\s+)?([+-]?\d[\d,]*(?:\.\d+)?|\S*\^\S+)(?=\s|$)", seg.strip())
        if tok:
            return _clean(tok.group(1))
    if _NEGATED_RE.search(body) and not math_spans:
        return "No"  # "The sequence does not have a finite limit." answers a yes/no question
    spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN_RE.finditer(body)]
    if spans:
        return _clean(spans[-1])
    return None


def looks_finished(text: str | None, markers: Markers = DEFAULT_MARKERS) -> bool | None:
    """Whether a trace's text looks finished, judged from the text alone.

    ``True``: a box after any thinking, or a closed thought or solution block, or an end marker. ``False``: a
    thought or solution still open at the end, or a long text without markers that stops mid-sentence (both:
    cut at the length limit). ``None``: cannot tell (plain text that ends a sentence, such as a summary).
    """
    if not text:
        return None
    part, state = split_thought(text, markers)
    if part is None:
        return False
    if _last_boxed(part) is not None:
        return True
    if state is None and cut_mid_sentence(part):
        return False
    return state


def extract_answer(text: str | None, finished: bool | None = None, markers: Markers = DEFAULT_MARKERS) -> str | None:
    """The final answer stated in ``text`` (a model output or a one-sentence summary), or None if there is none.

    ``finished``: whether the trace ended on its own (``False``: cut at the length limit), ``None`` when unknown
    (then judged from the text, see :func:`looks_finished`). Order (see the module docstring): nothing while a
    thought or solution block is open; else the last ``\\boxed{}``/``\\fbox{}`` with balanced braces (an empty box
    is no answer); else, only for a trace not known or judged cut, the last answer cue ("final answer is",
    "Answer:", "**Answer:**", "the answer is", "the correct option is") and then the value the last sentence
    states ("... is X", "Yes, ...", a trailing ``(B)``). Math delimiters and matching quotes are removed,
    multiple-choice answers become the bare letter, and ``78,732`` loses its thousands separators.
    """
    if not text or not text.strip():
        return None
    part, state = split_thought(text, markers)
    if part is None:
        return None
    boxed = _last_boxed(part)
    if boxed is not None:
        ans = _clean(boxed)
        return None if ans is None else (_choice(ans) or ans)
    if finished is False or (finished is None and state is None and cut_mid_sentence(part)):
        return None  # a cut trace's last words are not an answer
    for extract in (_cue_answer, _summary_answer):
        ans = extract(part)
        if ans:
            return ans
    return None
