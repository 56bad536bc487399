"""The math-verify worker process: parses and verifies answer pairs; sympy is imported only here.

Started by :mod:`deepprune.answers.pool` as ``python -c "from deepprune.answers.worker import main; main()"``.
Each step (parsing one answer, verifying one pair) runs under a CPU-time timer (``ITIMER_PROF``) in the main
thread; math-verify's own timeout is not used (it is wall-clock ``signal.alarm`` in whole seconds). Parsed
answers are cached, and all comparisons of one answer arrive in one request. Before math-verify's last resort,
``simplify(a - b)``, both expressions are evaluated at a few points: clearly different values prove ``a - b`` is
not zero, the verdict ``simplify`` would reach the slow way.

Bare answers (what ``extract_answer`` returns, e.g. ``3\\sqrt{2}`` or ``(1, 2)``) are parsed as inline LaTeX
(``$...$``) when they look like math rather than prose; math-verify would otherwise read only a prefix of them.
A few math-verify test inputs are whole model responses: those go to math-verify unchanged, with its extraction.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import OrderedDict
from typing import Any

from deepprune.answers.extract import MATH_WORDS, WORD_RE

_DELIMITED_RE = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox|\\begin\{")
_CALL_STYLE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\s*\(")


def _looks_bare_math(s: str) -> bool:
    """A bare answer that should be read as inline LaTeX: no delimiters, no prose, no ``sqrt(2)``-style calls."""
    if _DELIMITED_RE.search(s) or len(s) > 300 or "\n" in s.strip():
        return False
    if _CALL_STYLE_RE.search(s):
        return False
    words = [w for w in WORD_RE.findall(s) if w.lower() not in MATH_WORDS]
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


def main() -> None:  # pragma: no cover - runs in the subprocess
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
