"""Answer equivalence: the one checker behind pair labels, votes and accuracy, and the protocols consumers type with.

``AnswerChecker`` decides whether two answers are the same, with math-verify (``parse`` + ``verify``):

- **Symmetric** (default): ``equivalent(a, b)`` holds when math-verify accepts ``a`` as the reference for ``b``
  AND ``b`` as the reference for ``a``. math-verify is directional on purpose: it reads an equation in the
  prediction as its right-hand side (``7 = 11a+c`` vs ``11a+c`` is false, the swap is true) and lets a relation
  match a set only when the prediction is the set. Requiring both directions keeps the stricter reading of
  equations; for relations vs sets we apply math-verify's gate symmetrically (a set on either side allows the
  comparison, so ``0 < x < 1`` and ``(0, 1)`` are the same answer in both orders), which makes
  ``allow_set_relation_comp`` a no-op in this mode.
- **Directional** (``directional=True``): ``verify(parse(a), parse(b))`` with ``a`` the reference. This
  reproduces math-verify's own verdicts (its test suite) and is what a reference-vs-prediction score may want.

Before math-verify, in both modes (:mod:`deepprune.answers.normal`):

- quotes and currency signs go: ``"berl"`` is ``berl``; ``10``, ``\\$10`` and ``\\$10.00`` are one answer;
- **equations that name a value are compared by their values**: ``f(3)=3`` vs ``f(3)=5`` compares ``3`` with
  ``5`` (math-verify 0.9 calls any two equations with the same left side equal), and ``f(3)=\\dfrac{3}{17}`` vs
  ``\\dfrac{17}{153}`` compares ``\\dfrac{3}{17}`` with the bare value (math-verify calls that pair equal too).
  The known math-verify verdicts we override are pinned in the tests, so a change on its side is seen;
- **comma lists** (``1, 2, 3``) are compared as sets by math-verify (``1, 2`` equals ``2, 1``); ``ordered=True``
  compares two lists item by item, in order, and lists of different lengths differ;
- a fast path needs no sympy: identical answers after light normalisation (delimiters, spacing, ``\\text{}``,
  case of plain words) are equal, and two plain decimal numbers are compared exactly.

The rest runs in a persistent worker subprocess (:mod:`deepprune.answers.pool`, :mod:`deepprune.answers.worker`),
which keeps ``import deepprune.answers`` light: sympy loads only there. Each step of a comparison is bounded by
``timeout_s`` of CPU time, so a slow sympy call gives "not equal" (counted in ``AnswerChecker.stats["timeouts"]``)
without losing the worker, and verdicts do not depend on machine load.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from deepprune.answers.normal import canonical, comma_items, fast_compare, has_relation, named_equation
from deepprune.answers.pool import POOL

__all__ = [
    "AnswerChecker",
    "AnswerChecking",
    "AnswerClasses",
    "AnswerEquivalence",
    "CompareOptions",
    "answers_equivalent",
    "get_checker",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class AnswerClasses(Protocol):
    """What pairs and votes need from an answer checker: equivalence classes (:class:`AnswerChecker` has it)."""

    def classes(self, answers: Sequence[str | None]) -> list[int | None]: ...


@runtime_checkable
class AnswerEquivalence(Protocol):
    """What accuracy and label scoring need from an answer checker: one pair's verdict."""

    def equivalent(self, a: str | None, b: str | None) -> bool: ...


@runtime_checkable
class AnswerChecking(AnswerClasses, AnswerEquivalence, Protocol):
    """Both: what a policy or runner that votes and scores needs."""


_MATCH_TYPES = ("latex", "expr")


@dataclass(frozen=True)
class CompareOptions:
    """math-verify settings of one checker (the defaults are those of math-verify's own tests).

    ``match_types``: which extractors ``parse`` uses ("latex" with boxed answers first, "expr" for plain
    expressions). ``precision``: ``float_rounding`` of ``verify`` (decimals compared). ``strict``: variables
    matter (``f(x) != f(y)``). ``allow_set_relation_comp``: math-verify's set vs relation gate (only used when
    ``directional``). ``wrap_bare``: parse a bare math answer as ``$...$``. ``directional``: ``a`` is the
    reference and the result is math-verify's verdict (not symmetric). ``ordered``: two comma lists are equal
    only item by item in order (default: math-verify's reading, as sets).
    """

    match_types: tuple[str, ...] = _MATCH_TYPES
    precision: int = 6
    strict: bool = True
    allow_set_relation_comp: bool = False
    wrap_bare: bool = True
    directional: bool = False
    ordered: bool = False

    def __post_init__(self) -> None:
        types = (self.match_types,) if isinstance(self.match_types, str) else tuple(self.match_types)
        bad = [t for t in types if t not in _MATCH_TYPES]
        if bad or not types:
            raise ValueError(f"match_types must be a non-empty subset of {_MATCH_TYPES}, got {self.match_types!r}")
        object.__setattr__(self, "match_types", types)
        if int(self.precision) < 0:
            raise ValueError(f"precision must be >= 0, got {self.precision}")


class AnswerChecker:
    """Time-bounded, cached answer equivalence on math-verify (see the module docstring for the semantics).

    Args:
        timeout_s: CPU-time bound of each step of one comparison (parsing each answer, verifying the pair) in
            the worker; past it the pair is "not equal" and counted in ``stats["timeouts"]``. CPU time, not wall
            time, so verdicts do not depend on machine load. A step that cannot be interrupted (a long C-level
            operation) gets the worker killed and restarted (``stats["restarts"]``).
        match_types, precision, strict, allow_set_relation_comp, wrap_bare, directional, ordered: see
            :class:`CompareOptions`.
        cache_size: number of answer pairs whose verdict is kept.

    ``stats`` counts verdicts by source: ``fast`` (decided without sympy), ``cached``, ``worker`` (math-verify
    comparisons), ``timeouts`` (of those, cut off: "not equal") and ``restarts`` (worker killed after a stuck
    comparison). Thread-safe. All checkers share one worker process, so comparisons that need sympy run one at
    a time; the fast path and cache hits do not wait for it.
    """

    # Bumped whenever verdicts change, so verdicts stored on disk can be told apart (2: quotes, currency,
    # equations naming a value compared by value).
    SEMANTICS_VERSION = 2

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
        ordered: bool = False,
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
            ordered=bool(ordered),
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
        x, y, known = self._local(canonical(str(a)), canonical(str(b)))
        if known is not None:
            return known
        key = self._key(x, y)
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
            out.append(self._join(canonical(str(ans)), reps))
        return out

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def close() -> None:
        """Stop the shared worker process now (the next comparison starts a new one; also done at exit)."""
        POOL.shutdown()

    # -- internals ----------------------------------------------------------------------------------------------

    def _key(self, a: str, b: str) -> tuple[str, str]:
        # symmetric mode caches the unordered pair
        return (a, b) if self.options.directional or a <= b else (b, a)

    def _local(self, a: str, b: str) -> tuple[str, str, bool | None]:
        """The two strings math-verify compares for this pair, and the verdict when it is known without it.

        Ordered lists are decided item by item here; equations naming a value become their right-hand sides.
        """
        if self.options.ordered:
            items_a, items_b = comma_items(a), comma_items(b)
            if items_a is not None and items_b is not None:
                same = len(items_a) == len(items_b) and all(
                    self.equivalent(x, y) for x, y in zip(items_a, items_b, strict=True)
                )
                return a, b, same
        eq_a, eq_b = named_equation(a), named_equation(b)
        if eq_a and eq_b:
            if eq_a[0] == eq_b[0]:
                a, b = eq_a[1], eq_b[1]
        elif eq_a and not has_relation(b):
            a = eq_a[1]
        elif eq_b and not has_relation(a):
            b = eq_b[1]
        return a, b, self._known(a, b)

    def _known(self, a: str, b: str) -> bool | None:
        """The verdict from the fast path or the cache; None when math-verify is needed."""
        fast = fast_compare(a, b, self.options.precision)
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
        # reps not decided locally, in order, before the first locally equal one: (class id, rep form, ans form)
        pending: list[tuple[int, str, str]] = []
        for cid, rep in enumerate(reps):
            x, y, known = self._local(rep, ans)
            if known is True:
                break
            if known is None:
                pending.append((cid, x, y))
        else:
            cid = len(reps)
        start = 0
        while start < len(pending):
            # one worker request per run of pairs in which ans has the same form
            stop = start
            while stop < len(pending) and pending[stop][2] == pending[start][2]:
                stop += 1
            run = pending[start:stop]
            for (pid, _, _), verdict in zip(run, self._ask_many(run[0][2], [x for _, x, _ in run]), strict=False):
                if verdict:
                    return pid
            start = stop
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
        verdicts = POOL.first_match(a, bs, asdict(self.options), self.timeout_s)
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
