"""Final-answer extraction and answer equivalence: the one implementation behind pair labels, votes and accuracy.

``extract_answer(text)`` pulls the final answer out of a model output: the last ``\\boxed{...}`` (or ``\\fbox``),
else an answer cue ("The final answer is X", "Answer: X", "**Answer:** X", "the correct option is D"), else the
value a one-sentence summary states ("Therefore, the minimum value is 3.", "Yes, ..."). Text inside an unclosed
``<think>`` block has no final answer yet; after ``</think>`` only the part after it is read.

``AnswerChecker`` decides whether two answers are the same, with math-verify (``parse`` + ``verify``):

- **Symmetric** (default): ``equivalent(a, b)`` holds when math-verify accepts ``a`` as the reference for ``b``
  AND ``b`` as the reference for ``a``. math-verify is directional on purpose: it reads an equation in the
  prediction as its right-hand side (``7 = 11a+c`` vs ``11a+c`` is false, the swap is true) and lets a relation
  match a set only when the prediction is the set. Requiring both directions keeps the stricter reading of
  equations; for relations vs sets we apply math-verify's gate symmetrically (a set on either side allows the
  comparison, so ``0 < x < 1`` and ``(0, 1)`` are the same answer in both orders), which makes
  ``allow_set_relation_comp`` a no-op in this mode.
- **Directional** (``directional=True``): exactly ``verify(parse(a), parse(b))`` with ``a`` the reference. This
  reproduces math-verify's own verdicts (its test suite) and is what a reference-vs-prediction score may want.

Both modes share a fast path that needs no sympy: identical answers after light normalisation (delimiters,
spacing, ``\\text{}``, case of plain words) are equal, and two plain decimal numbers are compared exactly. The
rest runs in a persistent worker subprocess (which also keeps ``import deepprune.answers`` light: sympy loads
only there). Each step of a comparison (parsing one answer, verifying the pair) is bounded there by
``timeout_s`` of CPU time with a ``SIGPROF`` timer in the worker's main thread, so a slow sympy call gives "not
equal" (counted in ``AnswerChecker.stats["timeouts"]``) without losing the worker, and verdicts do not depend on
machine load. math-verify's own timeout is not used: it is wall-clock ``signal.alarm`` in whole seconds. A step
that the timer cannot interrupt (a long C-level operation such as ``9**9**9**9``) gets the worker killed and
restarted by the parent once it has used ``3 * timeout_s + 1`` s of CPU (or ``3 * timeout_s + 5`` s of wall
time). Parsed answers are cached in the worker, and ``classes`` sends all comparisons of one answer in one
request. Before math-verify's last resort, ``simplify(a - b)``, the worker evaluates both expressions at a few
points; clearly different values prove ``a - b`` is not zero, the verdict ``simplify`` would reach the slow way.

Bare answers (what ``extract_answer`` returns, e.g. ``3\\sqrt{2}`` or ``(1, 2)``) are parsed as inline LaTeX
(``$...$``) when they look like math rather than prose; math-verify would otherwise read only a prefix of them.
A few math-verify test inputs are whole model responses: those go to math-verify unchanged, with its extraction.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "AnswerChecker",
    "CompareOptions",
    "answers_equivalent",
    "extract_answer",
    "get_checker",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))

# Cues after which the answer follows; the last cue in the text wins.
_CUE_RE = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|\*\*\s*(?:final\s+)?answer\s*:?\s*\*\*\s*:?|(?:^|\n)\s*(?:final\s+)?answer\s*:"
    r"|the\s+(?:correct\s+)?answer\s+(?:is|would\s+be|should\s+be)\s*:?"
    r"|the\s+correct\s+(?:option|choice)\s+is\s*:?)",
    re.IGNORECASE,
)
_CHOICE_RE = re.compile(
    r"^\s*(?:\*\*)?\s*(?i:option|choice)?\s*[\(\[]?\s*([A-J])\s*[\)\]]?\s*(?:\*\*)?\s*[.:]?\s*(?:\*\*)?$"
)
_LAST_LINE_CHOICE_RE = re.compile(r"^\s*(?:\*\*)?\s*\(([A-J])\)\s*(?:\*\*)?\s*\.?\s*$")
_HOPE_RE = re.compile(r"\s*I hope (?:it|this) is correct.*$", re.IGNORECASE | re.DOTALL)

# Summary sentences: clauses after the answer that explain it, and the verbs that introduce it.
_TRAILING_CLAUSE_RE = re.compile(
    r"(?:,|;|\s-+\s|\s+)\s*(?:which|where|when|whenever|since|because|as\s+(?:it|this|the|a|we|shown)|attained"
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
_MATH_WORDS = frozenset(
    "sqrt cbrt sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp floor ceil gcd lcm max "
    "min mod pi inf infty infinity binom choose and or to pm mp cdot times frac dfrac tfrac le ge lt gt ne neq leq "
    "geq in cup cap sum prod lim mathbb mathrm text left right".split()
)
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _balanced(text: str, start: int) -> int | None:
    """Index just past the brace group opening at ``text[start] == '{'``; None when it never closes."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None if there is none."""
    for m in reversed(list(_BOXED_RE.finditer(text))):
        j = m.end()
        if j < len(text) and text[j] == "{":
            end = _balanced(text, j)
            if end is not None:
                return text[j + 1 : end - 1]
        elif m.group(0).endswith((" ", "\t")) and j < len(text):
            tok = re.match(r"[^\s$]+", text[j:])
            if tok:
                return tok.group(0)
    return None


def _strip_delims(s: str) -> str:
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
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


def _clean(ans: str) -> str | None:
    """Tidy an extracted answer: drop delimiters, trailing punctuation, markdown bold and thousands separators."""
    ans = _HOPE_RE.sub("", ans).strip()
    ans = ans.strip("*").strip()
    ans = _strip_delims(ans)
    ans = re.sub(r"[\s.,;:!]+$", "", ans).strip()
    ans = _strip_delims(ans)
    ans = ans.replace("{,}", "")
    if _THOUSANDS_RE.match(ans):
        ans = ans.replace(",", "")
    if ans.startswith("=") and not ans.startswith("=="):
        ans = ans[1:].strip()
    return ans or None


def _choice(ans: str) -> str | None:
    m = _CHOICE_RE.match(ans)
    return m.group(1) if m else None


def _cue_answer(text: str) -> str | None:
    matches = list(_CUE_RE.finditer(text))
    for m in reversed(matches):
        rest = text[m.end() :].lstrip(" \t:")
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
    return core.lower() in _MATH_WORDS


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
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    last = lines[-1]
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
    if first and _is_math_token(first.group(0)) and first.group(0).lower() not in _MATH_WORDS | {"a", "i"}:
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


def extract_answer(text: str | None) -> str | None:
    """The final answer stated in ``text`` (a model output or a one-sentence summary), or None if there is none.

    Order: the part after the last ``</think>`` (None while a ``<think>`` block is still open); the last
    ``\\boxed{}``/``\\fbox{}`` with balanced braces; the last answer cue ("final answer is", "Answer:",
    "**Answer:**", "the answer is", "the correct option is"); the value the last sentence states
    ("... is X", "... are X", "Yes, ...", a trailing ``(B)``). Math delimiters are removed, multiple-choice
    answers become the bare letter, and ``78,732`` loses its thousands separators.
    """
    if not text or not text.strip():
        return None
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        ans = _clean(boxed)
        if ans is not None:
            return _choice(ans) or ans
    for extract in (_cue_answer, _summary_answer):
        ans = extract(text)
        if ans:
            return ans
    return None


# ---------------------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------------------

_MATCH_TYPES = ("latex", "expr")


@dataclass(frozen=True)
class CompareOptions:
    """math-verify settings of one checker (the defaults are those of math-verify's own tests).

    ``match_types``: which extractors ``parse`` uses ("latex" with boxed answers first, "expr" for plain
    expressions). ``precision``: ``float_rounding`` of ``verify`` (decimals compared). ``strict``: variables
    matter (``f(x) != f(y)``). ``allow_set_relation_comp``: math-verify's set vs relation gate (only used when
    ``directional``). ``wrap_bare``: parse a bare math answer as ``$...$``. ``directional``: ``a`` is the
    reference and the result is math-verify's verdict as is (not symmetric).
    """

    match_types: tuple[str, ...] = _MATCH_TYPES
    precision: int = 6
    strict: bool = True
    allow_set_relation_comp: bool = False
    wrap_bare: bool = True
    directional: bool = False

    def __post_init__(self) -> None:
        types = (self.match_types,) if isinstance(self.match_types, str) else tuple(self.match_types)
        bad = [t for t in types if t not in _MATCH_TYPES]
        if bad or not types:
            raise ValueError(f"match_types must be a non-empty subset of {_MATCH_TYPES}, got {self.match_types!r}")
        object.__setattr__(self, "match_types", types)
        if int(self.precision) < 0:
            raise ValueError(f"precision must be >= 0, got {self.precision}")


_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def _normalise(s: str) -> str:
    """Light, semantics-preserving normal form for the string fast path."""
    s = _strip_delims(s.strip())
    s = _TEXT_WRAP_RE.sub(r"\1", s)
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z ]*", s):
        s = s.lower()  # plain words: "Yes" == "yes"; single letters and maths keep their case
    return s


def _fast_compare(a: str, b: str, precision: int) -> bool | None:
    """True/False when decidable without sympy (equal normal forms, plain numbers); None otherwise."""
    na, nb = _normalise(a), _normalise(b)
    if na and na == nb:
        return True
    if len(na) < 400 and len(nb) < 400 and _PLAIN_NUMBER_RE.match(na) and _PLAIN_NUMBER_RE.match(nb):
        try:
            da, db = Decimal(na), Decimal(nb)
        except InvalidOperation:
            return None
        if da == db:
            return True
        if "." not in na and "." not in nb:
            return False  # two integers: math-verify compares them exactly
        # floats are rounded to `precision` decimals by math-verify; only a clear gap is decided here
        if abs(da - db) > Decimal(2) * Decimal(10) ** (-int(precision)):
            return False
    return None


class _WorkerDied(RuntimeError):
    pass


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class _Worker:
    """A persistent ``python`` subprocess running :func:`_worker_main`; JSON lines over stdin/stdout."""

    def __init__(self, startup_timeout_s: float = 120.0) -> None:
        src_dir = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = src_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", "from deepprune.answers import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            close_fds=True,
        )
        self._buf = b""
        self._next_id = 0
        ready = self._read_line(time.monotonic() + startup_timeout_s)
        if ready is None or json.loads(ready).get("ready") is not True:
            self.kill()
            raise RuntimeError("deepprune.answers: the math-verify worker did not start")

    def _read_line(self, deadline: float) -> str | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _WorkerDied("math-verify worker exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8")

    def send(self, payload: dict[str, Any]) -> int:
        """Send one request; its id."""
        self._next_id += 1
        try:
            self.proc.stdin.write((json.dumps({**payload, "id": self._next_id}) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise _WorkerDied(str(e)) from e
        return self._next_id

    def read_reply(self, req_id: int, cpu_limit_s: float, wall_limit_s: float) -> dict[str, Any] | None:
        """The next reply line of request ``req_id``; None when the worker seems stuck (it is then killed).

        The worker bounds its own work by CPU time, so a reply normally comes; the worker is declared stuck only
        when it has used ``cpu_limit_s`` of CPU (a long C-level operation its timer cannot interrupt) or
        ``wall_limit_s`` has passed, whichever comes first. CPU rather than wall time keeps verdicts the same on
        a loaded machine.
        """
        start_wall = time.monotonic()
        start_cpu = _cpu_seconds(self.proc.pid)
        hard_deadline = start_wall + wall_limit_s
        while True:
            # poll at a short interval to watch the worker's CPU time
            line = self._read_line(min(hard_deadline, time.monotonic() + 0.25))
            if line is not None:
                reply = json.loads(line)
                if reply.get("id") != req_id:
                    continue  # a stale reply of an earlier request
                if "error" in reply:
                    raise _WorkerDied(reply["error"])
                return reply
            now_cpu = _cpu_seconds(self.proc.pid)
            over_cpu = start_cpu is not None and now_cpu is not None and now_cpu - start_cpu > cpu_limit_s
            if over_cpu or time.monotonic() >= hard_deadline:
                self.kill()
                return None
            if start_cpu is None and time.monotonic() - start_wall > cpu_limit_s:
                self.kill()  # no /proc: wall time stands in for CPU time
                return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a killed process always exits
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


@dataclass
class _Verdict:
    equal: bool
    timed_out: bool = False
    killed: bool = False


class _WorkerPool:
    """The process-wide math-verify worker, shared by every checker (options travel with each request)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.worker: _Worker | None = None
        self.restarts = 0

    def first_match(self, a: str, bs: Sequence[str], opts: dict[str, Any], timeout_s: float) -> list[_Verdict]:
        """Verdicts of ``a`` against ``bs`` in order, up to and including the first equal one.

        The worker answers pair by pair, so a stuck pair is known exactly: it is "not equal" (timed out), the
        worker is killed, and the remaining pairs go to a fresh worker.
        """
        out: list[_Verdict] = []
        # a pair parses two strings and verifies, each bounded by timeout_s of worker CPU time
        cpu_limit = 3 * timeout_s + 1.0
        wall_limit = 3 * timeout_s + 5.0
        with self.lock:
            failures = 0
            while len(out) < len(bs):
                if self.worker is None or not self.worker.alive():
                    self.worker = _Worker()
                    self.restarts += 1
                todo = list(bs[len(out) :])
                try:
                    req = self.worker.send({"a": a, "bs": todo, "opts": opts, "timeout": timeout_s})
                    for _ in todo:
                        reply = self.worker.read_reply(req, cpu_limit, wall_limit)
                        if reply is None:  # stuck: the worker was killed
                            self.worker = None
                            out.append(_Verdict(False, timed_out=True, killed=True))
                            break
                        out.append(_Verdict(bool(reply["result"]), timed_out=bool(reply.get("timeout"))))
                        if out[-1].equal:
                            return out
                except _WorkerDied as e:
                    # a crash in the worker (e.g. deep recursion in sympy) is retried once in a fresh worker
                    if self.worker is not None:
                        self.worker.kill()
                    self.worker = None
                    failures += 1
                    if failures >= 2:
                        logger.warning("math-verify worker failed twice on one comparison (%s): not equal", e)
                        out.append(_Verdict(False))
                        failures = 0
        return out

    def shutdown(self) -> None:
        with self.lock:
            if self.worker is not None:
                self.worker.kill()
                self.worker = None


_POOL = _WorkerPool()
atexit.register(_POOL.shutdown)


class AnswerChecker:
    """Time-bounded, cached answer equivalence on math-verify (see the module docstring for the semantics).

    Args:
        timeout_s: CPU-time bound of each step of one comparison (parsing each answer, verifying the pair) in
            the worker; past it the pair is "not equal" and counted in ``stats["timeouts"]``. CPU time, not wall
            time, so verdicts do not depend on machine load. A step that cannot be interrupted (a long C-level
            operation) gets the worker killed and restarted (``stats["restarts"]``).
        match_types, precision, strict, allow_set_relation_comp, wrap_bare, directional: see
            :class:`CompareOptions`.
        cache_size: number of answer pairs whose verdict is kept.

    ``stats`` counts verdicts by source: ``fast`` (decided without sympy), ``cached``, ``worker`` (math-verify
    comparisons), ``timeouts`` (of those, cut off: "not equal") and ``restarts`` (worker killed after a stuck
    comparison). Thread-safe. All checkers share one worker process, so comparisons that need sympy run one at
    a time; the fast path and cache hits do not wait for it.
    """

    def __init__(
        self,
        timeout_s: float = 2.0,
        *,
        match_types: Sequence[str] = _MATCH_TYPES,
        precision: int = 6,
        strict: bool = True,
        allow_set_relation_comp: bool = False,
        wrap_bare: bool = True,
        directional: bool = False,
        cache_size: int = 200_000,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.options = CompareOptions(
            match_types=tuple(match_types),
            precision=int(precision),
            strict=bool(strict),
            allow_set_relation_comp=bool(allow_set_relation_comp),
            wrap_bare=bool(wrap_bare),
            directional=bool(directional),
        )
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"fast": 0, "cached": 0, "worker": 0, "timeouts": 0, "restarts": 0}

    # -- public API ---------------------------------------------------------------------------------------------

    def equivalent(self, a: str | None, b: str | None) -> bool:
        """Whether ``a`` and ``b`` are the same answer. None is never equivalent to anything."""
        if a is None or b is None:
            return False
        a, b = str(a), str(b)
        known = self._known(a, b)
        if known is not None:
            return known
        key = self._key(a, b)
        return self._ask(key[0], [key[1]])[0]

    __call__ = equivalent

    def classes(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-class id of each answer (0, 1, ... in first-seen order); None for a missing answer.

        Each answer is compared with the first member (the representative) of every class so far and joins
        the first class that matches, so the result depends only on the order of ``answers``. The comparisons
        that need math-verify for one answer go to the worker in one request.
        """
        reps: list[str] = []
        out: list[int | None] = []
        for ans in answers:
            if ans is None:
                out.append(None)
                continue
            ans = str(ans)
            out.append(self._join(ans, reps))
        return out

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def close() -> None:
        """Stop the shared worker process now (the next comparison starts a new one; also done at exit)."""
        _POOL.shutdown()

    # -- internals ----------------------------------------------------------------------------------------------

    def _key(self, a: str, b: str) -> tuple[str, str]:
        # symmetric mode caches the unordered pair
        return (a, b) if self.options.directional or a <= b else (b, a)

    def _known(self, a: str, b: str) -> bool | None:
        """The verdict from the fast path or the cache; None when math-verify is needed."""
        fast = _fast_compare(a, b, self.options.precision)
        if fast is not None:
            self.stats["fast"] += 1
            return fast
        key = self._key(a, b)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.stats["cached"] += 1
        return hit

    def _join(self, ans: str, reps: list[str]) -> int:
        """Class id of ``ans`` given the representatives so far (appends a new one when nothing matches)."""
        pending: list[int] = []  # reps not decided locally, in order, before the first locally equal one
        for cid, rep in enumerate(reps):
            known = self._known(rep, ans)
            if known is True:
                break
            if known is None:
                pending.append(cid)
        else:
            cid = len(reps)
        for pid, verdict in zip(pending, self._ask_many(ans, [reps[p] for p in pending]), strict=False):
            if verdict:
                return pid
        if cid == len(reps):
            reps.append(ans)
        return cid

    def _ask_many(self, ans: str, reps: list[str]) -> list[bool]:
        """math-verify verdicts of ``rep`` vs ``ans`` for each rep, up to the first equal one."""
        if not reps:
            return []
        if self.options.directional:
            # the reference differs per pair, so each pair is its own request
            out = []
            for rep in reps:
                out.extend(self._ask(rep, [ans]))
                if out[-1]:
                    break
            return out
        return self._ask(ans, reps)

    def _ask(self, a: str, bs: list[str]) -> list[bool]:
        """Verdicts of ``a`` vs each of ``bs`` from the worker (up to the first equal one), cached."""
        verdicts = _POOL.first_match(a, bs, asdict(self.options), self.timeout_s)
        out = []
        with self._lock:
            for b, v in zip(bs, verdicts, strict=False):
                self.stats["worker"] += 1
                if v.timed_out:
                    self.stats["timeouts"] += 1
                    logger.debug("answer comparison timed out after %.1f s CPU: not equal", self.timeout_s)
                if v.killed:
                    self.stats["restarts"] += 1
                key = (a, b) if self.options.directional else self._key(a, b)
                self._cache[key] = v.equal
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                out.append(v.equal)
        return out


_DEFAULT: AnswerChecker | None = None
_CHECKERS: dict[tuple[Any, ...], AnswerChecker] = {}
_GLOBAL_LOCK = threading.Lock()


def get_checker() -> AnswerChecker:
    """The process-wide default checker (symmetric, 2 s timeout, math-verify test defaults)."""
    global _DEFAULT
    with _GLOBAL_LOCK:
        if _DEFAULT is None:
            _DEFAULT = AnswerChecker()
        return _DEFAULT


def answers_equivalent(a: str | None, b: str | None, **options: Any) -> bool:
    """``get_checker().equivalent(a, b)``; keyword options (those of :class:`AnswerChecker`) use a shared
    checker built for them, so ``answers_equivalent(gold, pred, precision=2, match_types=["latex"])`` works."""
    if not options:
        return get_checker().equivalent(a, b)
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    with _GLOBAL_LOCK:
        checker = _CHECKERS.get(key)
        if checker is None:
            checker = _CHECKERS[key] = AnswerChecker(**options)
    return checker.equivalent(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Worker process (runs math-verify; sympy is imported only here)
# ---------------------------------------------------------------------------------------------------------------

_DELIMITED_RE = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox|\\begin\{")
_CALL_STYLE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\s*\(")


def _looks_bare_math(s: str) -> bool:
    """A bare answer that should be read as inline LaTeX: no delimiters, no prose, no ``sqrt(2)``-style calls."""
    if _DELIMITED_RE.search(s) or len(s) > 300 or "\n" in s.strip():
        return False
    if _CALL_STYLE_RE.search(s):
        return False
    words = [w for w in _WORD_RE.findall(s) if w.lower() not in _MATH_WORDS]
    return not any(len(w) >= 3 for w in words)


def _patch_latex2sympy() -> None:
    # latex2sympy2_extended 1.11 with the antlr 4.9.3 runtime (hydra pins it) uses a generated parser without
    # FUNC_GAMMA, and its converter asks for it before PERCENT_NUMBER: every "28\%" fails to parse. Answering
    # "no gamma token" restores percent parsing; a no-op where the parser has the token.
    try:
        from latex2sympy2_extended.antlr_parser import PSParser
    except Exception:  # pragma: no cover - other latex2sympy layouts
        return
    ctx = getattr(PSParser, "AtomContext", None)
    if ctx is not None and not hasattr(ctx, "FUNC_GAMMA"):
        ctx.FUNC_GAMMA = lambda self: None


# Points at which two expressions are evaluated to show they differ: small positive integers (the domain of
# most combinatorics answers, where factorials and binomials are defined) and one positive non-integer.
_PROBE_VALUES = (
    (3, 5, 7, 2, 11, 4),
    (4, 2, 6, 9, 3, 8),
    (6, 8, 3, 5, 2, 7),
    ("7/3", "5/2", "9/4", "11/5", "13/6", "3/2"),
)
_PROBE_MAX_TERMS = 200


def _patch_symbolic_eq(mv_grader: Any) -> None:
    """Make math-verify's last resort, ``simplify(a - b).is_zero``, skip pairs that evaluate to different numbers.

    Nearly all pairs that reach ``simplify`` are different answers, and ``simplify`` spends its longest on
    exactly those. If ``a`` and ``b`` take clearly different finite values at one point, ``a - b`` is not
    identically zero, so a correct ``simplify`` cannot reduce it to 0 and math-verify's verdict is "not equal"
    either way. Only plain symbols are substituted, with values that satisfy all their assumptions (real,
    integer, ...), so the point lies in the domain ``simplify`` reasons about; anything not evaluable at a point
    (undefined functions, huge sums, poles) leaves the decision to ``simplify``.
    """
    from sympy import Expr, Float, Product, Rational, Sum, Symbol, nan, zoo

    original = mv_grader.sympy_symbolic_eq

    def value(expr: Any, point: dict[Any, Any]) -> complex | None:
        e = expr.subs(point) if point else expr
        for big in e.atoms(Sum, Product):
            for _, lo, hi in big.limits:
                if not (lo.is_Integer and hi.is_Integer) or hi - lo > _PROBE_MAX_TERMS:
                    return None
        v = e.evalf(30)
        if not v.is_number or v.has(nan, zoo) or not v.is_finite:
            return None
        try:
            return complex(v)
        except (TypeError, ValueError):
            return None

    def differ(a: Any, b: Any) -> bool:
        if not (isinstance(a, Expr) and isinstance(b, Expr)) or a.has(Float) or b.has(Float):
            return False
        syms = sorted(a.free_symbols | b.free_symbols, key=str)
        if len(syms) > len(_PROBE_VALUES[0]):
            return False
        if any(type(s) is not Symbol for s in syms):
            return False
        for values in _PROBE_VALUES if syms else ((),):
            point = {s: Rational(v) for s, v in zip(syms, values, strict=False)}
            # the point must satisfy every assumption of its symbols (latex2sympy makes them real)
            if not all(getattr(v, f"is_{k}") is w for s, v in point.items() for k, w in s.assumptions0.items()):
                continue
            va, vb = value(a, point), value(b, point)
            if va is not None and vb is not None and abs(va - vb) > 1e-9 * (1 + abs(va) + abs(vb)):
                return True
        return False

    def symbolic_eq(a: Any, b: Any) -> bool:
        try:
            if differ(a, b):
                return False
        except Exception:
            pass
        return original(a, b)

    mv_grader.sympy_symbolic_eq = symbolic_eq


def _worker_main() -> None:  # pragma: no cover - runs in the subprocess
    """Serve comparison requests (one JSON object per line on stdin, one reply line per pair) until stdin closes.

    Each step (parsing one answer, verifying one pair) runs under a CPU-time timer (``ITIMER_PROF``) that raises
    in this, the main, thread; math-verify's own ``signal.alarm`` timeouts are off (wall time, whole seconds).
    """
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr  # anything the libraries print must not corrupt the protocol
    logging.basicConfig(level=logging.ERROR)
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    import signal

    import math_verify.grader as mv_grader
    import math_verify.parser as mv_parser
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from sympy import Set

    _patch_latex2sympy()
    _patch_symbolic_eq(mv_grader)
    mv_grader.TIMEOUT_WARNING_SHOWN = True
    mv_parser.TIMEOUT_WARNING_SHOWN = True

    class CpuTimeout(BaseException):  # BaseException: sympy's and math-verify's `except Exception` let it through
        pass

    def on_timer(signum: int, frame: Any) -> None:
        raise CpuTimeout

    signal.signal(signal.SIGPROF, on_timer)

    def bounded(seconds: float, fn: Any, *args: Any) -> Any:
        signal.setitimer(signal.ITIMER_PROF, seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)

    configs: dict[tuple[str, ...], list[Any]] = {}
    # parsed answers (None: parsing timed out), keyed by text, options and time limit
    parsed: OrderedDict[tuple[str, tuple[str, ...], bool, float], list[Any] | None] = OrderedDict()

    def parse_once(text: str, match_types: tuple[str, ...], wrap: bool) -> list[Any]:
        if match_types not in configs:
            configs[match_types] = [
                LatexExtractionConfig(boxed_match_priority=0) if t == "latex" else ExprExtractionConfig()
                for t in match_types
            ]
        src = text
        if wrap and "latex" in match_types and _looks_bare_math(text):
            src = f"${text.strip()}$"
        result = parse(src, configs[match_types], parsing_timeout=None)
        if not result and src is not text:
            result = parse(text, configs[match_types], parsing_timeout=None)
        return result

    def parse_cached(text: str, match_types: tuple[str, ...], wrap: bool, limit: float) -> list[Any] | None:
        key = (text, match_types, wrap, limit)
        if key in parsed:
            parsed.move_to_end(key)
            return parsed[key]
        try:
            result = bounded(limit, parse_once, text, match_types, wrap)
        except CpuTimeout:
            result = None
        except RecursionError:
            result = []
        except Exception:
            result = []
        parsed[key] = result
        if len(parsed) > 20_000:
            parsed.popitem(last=False)
        return result

    def has_set(items: list[Any]) -> bool:
        # "x \in [0, 1)" parses as an assignment whose value is the set; math-verify unwraps it before its gate
        return any(
            isinstance(x, Set)
            or (mv_grader.is_assignment_relation(x) and isinstance(mv_grader.take_last_relation(x).rhs, Set))
            for x in items
        )

    def verify_pair(pa: list[Any], pb: list[Any], opts: dict[str, Any]) -> bool:
        kw = {"float_rounding": opts["precision"], "strict": opts["strict"], "timeout_seconds": None}
        if opts["directional"]:
            return bool(verify(pa, pb, allow_set_relation_comp=opts["allow_set_relation_comp"], **kw))
        # symmetric: both directions, math-verify's "prediction is a set" gate widened to "either side is a set"
        allow = opts["allow_set_relation_comp"] or has_set(pa) or has_set(pb)
        return bool(verify(pa, pb, allow_set_relation_comp=allow, **kw)) and bool(
            verify(pb, pa, allow_set_relation_comp=allow, **kw)
        )

    def compare(a: str, b: str, opts: dict[str, Any], limit: float) -> tuple[bool, bool]:
        """(equal, timed out)."""
        types = tuple(opts["match_types"])
        pa = parse_cached(a, types, opts["wrap_bare"], limit)
        pb = parse_cached(b, types, opts["wrap_bare"], limit)
        if pa is None or pb is None:
            return False, True
        if not pa or not pb:
            return False, False
        try:
            return bounded(limit, verify_pair, pa, pb, opts), False
        except CpuTimeout:
            return False, True
        except RecursionError:
            return False, False
        except Exception as e:  # math-verify already swallows most errors; anything else is "not equal"
            logging.getLogger(__name__).debug("comparison failed: %r", e)
            return False, False

    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        for i, b in enumerate(req["bs"]):
            try:
                equal, timed_out = compare(req["a"], b, req["opts"], float(req["timeout"]))
            except CpuTimeout:  # the timer fired just as a step finished
                equal, timed_out = False, True
            proto.write(json.dumps({"id": req["id"], "i": i, "result": equal, "timeout": timed_out}) + "\n")
            if equal:
                break
