"""Answer normal forms and the comparisons that need no sympy (the checker's fast path and its pre-processing).

- :func:`canonical`: one pair of matching quotes around a text answer goes (``"berl"`` is ``berl``), and a
  currency amount is its number (``\\$10``, ``$10`` and ``\\$10.00`` are ``10``, ``10`` and ``10.00``).
- :func:`named_equation`: ``f(3) = 5`` -> ``("f(3)", "5")`` when the left side names a value (a variable, a
  subscripted or primed one, a function of arguments); the checker compares right-hand sides with it, because
  math-verify reads two equations with the same left side as equal whatever their values (``f(3)=3`` vs ``f(3)=5``).
- :func:`comma_items`: the top-level items of a comma list (for the ordered reading of lists).
- :func:`fast_compare`: identical normal forms are equal; two plain decimal numbers are compared exactly.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from deepprune.answers.extract import strip_delims, strip_quotes

_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
# \$10, $10 (a lone dollar sign, not a math span), 10\$, \$1,000.50, with an optional \text{} wrapper
_CURRENCY_RE = re.compile(
    r"^(?:\\\$|\$(?!.*\$))\s*([+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[+-]?\d+(?:\.\d+)?)$"
    r"|^([+-]?\d+(?:\.\d+)?)\s*\\\$$"
)
_CANONICAL_MAX = 300  # longer strings are whole responses: left to math-verify's own extraction
# a name on the left of "=": x, x_1, a_{37}, f', \theta, f(3), P(A), g(x, y); one "=" and no other relation
_NAMED_EQ_RE = re.compile(
    r"^\s*((?:\\[A-Za-z]+|[A-Za-z])(?:_\{?[A-Za-z0-9]+\}?)?'*(?:\s*\([^()=]*\))?)\s*=\s*([^=]+?)\s*$"
)
_RELATION_RE = re.compile(r"[<>]|\\(?:le|ge|leq|geq|ne|neq|lt|gt|approx|equiv|sim|in)(?![A-Za-z])|!=")
_OPEN, _CLOSE = "([{", ")]}"


def canonical(s: str) -> str:
    """The form an answer is compared in: quotes and currency signs removed (short answers only)."""
    t = s.strip()
    if len(t) > _CANONICAL_MAX or "\n" in t:
        return s
    t = strip_quotes(t)
    inner = strip_delims(t)
    m = _CURRENCY_RE.match(inner)
    if m:
        return (m.group(1) or m.group(2)).replace(",", "")
    return t


def named_equation(s: str) -> tuple[str, str] | None:
    """``(lhs, rhs)`` of ``lhs = rhs`` when the left side is a name (see the module docstring); else None."""
    t = strip_delims(s.strip())
    if len(t) > _CANONICAL_MAX or t.count("=") != 1 or _RELATION_RE.search(t):
        return None
    m = _NAMED_EQ_RE.match(t)
    if not m or not m.group(2).strip():
        return None
    return re.sub(r"\s+", "", m.group(1)), m.group(2).strip()


def has_relation(s: str) -> bool:
    """Whether ``s`` states an equation or inequality (anything math-verify reads as a relation)."""
    return "=" in s or bool(_RELATION_RE.search(s))


def comma_items(s: str) -> list[str] | None:
    """The items of a comma list at bracket depth 0 (``1, (2, 3), 4`` -> 3 items); None when there is no comma."""
    t = strip_delims(s.strip())
    if len(t) > _CANONICAL_MAX or "," not in t:
        return None
    items, depth, start, i = [], 0, 0, 0
    while i < len(t):
        c = t[i]
        if c == "\\" and i + 1 < len(t):
            # \{ and \} are set braces; other escapes are skipped whole
            if t[i + 1] in "{}":
                depth += 1 if t[i + 1] == "{" else -1
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            items.append(t[start:i].strip())
            start = i + 1
        i += 1
    items.append(t[start:].strip())
    if len(items) < 2 or not all(items):
        return None
    return items


def normalise(s: str) -> str:
    """Light, semantics-preserving normal form for the string fast path."""
    s = strip_delims(s.strip())
    s = _TEXT_WRAP_RE.sub(r"\1", s)
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z ]*", s):
        s = s.lower()  # plain words: "Yes" == "yes"; single letters and maths keep their case
    return s


def fast_compare(a: str, b: str, precision: int) -> bool | None:
    """True/False when decidable without sympy (equal normal forms, plain numbers); None otherwise."""
    na, nb = normalise(a), normalise(b)
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
