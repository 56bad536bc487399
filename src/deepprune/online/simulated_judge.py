"""A simulated pair judge with a chosen AUROC: ``judge=simulated``, for asking how good a judge must be.

It knows whether two traces reach equivalent final answers (like the oracle, from the generator's
``peek_answer``: the simulator or replay) and blurs that with a stated noise model.

Model (equal-variance binormal, in logit units). For a pair (a, b) with label y = 1 when the final answers are
equivalent (a missing answer is never equivalent to anything, as in the oracle):

    z = (y - 1/2) * d + sqrt(1 - rho) * e_ab + sqrt(rho / 2) * (u_a + u_b)
    score = sigmoid(s * z + offset)

with ``e_ab``, ``u_a``, ``u_b`` independent standard normals, so z given y is N(+-d/2, 1) and the AUROC over
pairs is Phi(d / sqrt(2)): ``d = sqrt(2) * Phi^-1(auroc)``. ``u_t`` is a per-trace error (``trace_correlation``
= rho in [0, 1]): a trace whose prefix misleads the judge misleads it against every partner, as real judges
err (two pairs sharing a trace have noise correlation rho / 2). ``scale`` s defaults to d, which makes
``sigmoid(d * z)`` the exact posterior P(same | z) at a 50/50 base rate; ``offset`` then shifts the logit:
``offset = logit(pi)`` is calibrated for a base rate pi of same-answer pairs, a positive offset is a judge
that says "same" too readily (MiniLM cosines on CHAMP prefixes all lie above 0.73), a negative one a
reluctant judge. ``auroc = 1`` is the oracle (scores exactly 0 or 1); ``auroc = 0.5`` with the default scale
gives every pair the same score, sigmoid(offset).

Draws are deterministic: e_ab is a hash of (``seed``, the two traces' seeds in sorted order) and u_t of
(``seed``, the trace's seed), so a pair scores the same in either order and on every call, and a run is
reproducible whatever the order of calls (the traces' seeds already encode the run seed and the problem).

Limits, stated: the noise does not depend on the prefix (its length, the problem, the answer's class or
size), on how far apart two traces' answers are, or on the trace's position; real judges' score
distributions are neither normal nor equal-variance; errors correlate per trace only through u_t. It reads
no text. Input tokens are counted as a text judge reading both prefixes once (``reads_both_orders``: twice),
what a real judge of the same protocol would read.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from deepprune.online.judges import OracleJudge

if TYPE_CHECKING:
    from deepprune.answers import AnswerChecker
    from deepprune.online.generators.base import Generator, TraceState

__all__ = ["SimulatedJudge", "separation_for_auroc", "hashed_normals"]

Pairs = Sequence[tuple["TraceState", "TraceState"]]

_MASK = (1 << 64) - 1
_PAIR_TAG = 0x9A1B
_TRACE_TAG = 0x7ACE


def separation_for_auroc(auroc: float) -> float:
    """d such that N(d/2, 1) against N(-d/2, 1) has this AUROC: sqrt(2) * Phi^-1(auroc) (inf for 1)."""
    if not 0.5 <= auroc <= 1.0:
        raise ValueError(f"judge.auroc must be in [0.5, 1], got {auroc}")
    return float("inf") if auroc == 1.0 else float(np.sqrt(2.0) * NormalDist().inv_cdf(auroc))


_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_SECOND = np.uint64(0x5DEECE66D)


def _splitmix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: a cheap, well-mixed 64-bit hash (uint64 arithmetic wraps on purpose)
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def _chain(h: np.ndarray, *keys: np.ndarray | int) -> np.ndarray:
    for k in keys:
        h = _splitmix(h ^ np.asarray(k, dtype=np.uint64))
    return h


def _to_normal(h: np.ndarray) -> np.ndarray:
    h2 = _splitmix(h ^ _SECOND)
    u1 = ((h >> _S11).astype(np.float64) + 0.5) * 2.0**-53
    u2 = (h2 >> _S11).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def hashed_normals(*keys: np.ndarray | int) -> np.ndarray:
    """Standard normals that are a pure function of the keys (Box-Muller on two hashed uniforms)."""
    return _to_normal(_chain(np.zeros(1, dtype=np.uint64), *keys))


class SimulatedJudge:
    """Equivalence of final answers, blurred by a binormal noise model of AUROC ``auroc`` (module docstring)."""

    def __init__(
        self,
        auroc: float = 0.87,
        offset: float = 0.0,
        scale: float | None = None,
        trace_correlation: float = 0.0,
        seed: int = 0,
        reads_both_orders: bool = False,
        checker: AnswerChecker | None = None,
    ) -> None:
        self.d = separation_for_auroc(float(auroc))
        if not 0.0 <= trace_correlation <= 1.0:
            raise ValueError(f"judge.trace_correlation must be in [0, 1], got {trace_correlation}")
        if scale is not None and scale < 0:
            raise ValueError(f"judge.scale must be >= 0 or null, got {scale}")
        self.auroc = float(auroc)
        self.offset = float(offset)
        self.scale = scale
        self.rho = float(trace_correlation)
        self.seed = int(seed) & _MASK
        # the hash state after the constant keys: hashed_normals(seed, tag, ...) without rehashing them per call
        self._pair_h = _chain(np.zeros(1, dtype=np.uint64), self.seed, _PAIR_TAG)
        self._trace_h = _chain(np.zeros(1, dtype=np.uint64), self.seed, _TRACE_TAG)
        self.reads_both_orders = reads_both_orders
        self._oracle = OracleJudge(checker)  # the labels: final-answer equivalence
        self._generator: Any = None

    def attach(self, generator: Generator) -> None:
        self._oracle.attach(generator)  # needs peek_answer: the simulator or replay
        self._generator = generator

    def labels(self, pairs: Pairs) -> np.ndarray:
        """1.0 where the two traces' final answers are equivalent, else 0.0 (the oracle's scores)."""
        classes = getattr(self._generator, "answer_class", None)
        if not callable(classes):
            return self._oracle.score(pairs)
        # the simulator knows each answer's class: no answer comparisons per pair
        ca = np.array([classes(a) for a, _ in pairs], dtype=np.int64)
        cb = np.array([classes(b) for _, b in pairs], dtype=np.int64)
        return ((ca == cb) & (ca >= 0)).astype(float)

    def score(self, pairs: Pairs) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        y = self.labels(pairs)
        if np.isinf(self.d):
            return y
        sa = np.array([a.seed & _MASK for a, _ in pairs], dtype=np.uint64)
        sb = np.array([b.seed & _MASK for _, b in pairs], dtype=np.uint64)
        lo, hi = np.minimum(sa, sb), np.maximum(sa, sb)
        noise = np.sqrt(1.0 - self.rho) * _to_normal(_chain(self._pair_h, lo, hi))
        if self.rho > 0:
            ua = _to_normal(_chain(self._trace_h, sa))
            ub = _to_normal(_chain(self._trace_h, sb))
            noise = noise + np.sqrt(self.rho / 2.0) * (ua + ub)
        z = (y - 0.5) * self.d + noise
        s = self.d if self.scale is None else float(self.scale)
        return 1.0 / (1.0 + np.exp(-(s * z + self.offset)))

    def input_tokens(self, pairs: Pairs) -> int:
        orders = 2 if self.reads_both_orders else 1
        return orders * sum(a.num_tokens + b.num_tokens for a, b in pairs)
