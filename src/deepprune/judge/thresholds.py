"""Thresholds that mean something: ``tau=auto``, chosen on a judge's validation pairs for a stated target.

``false_merge``: at most a share of the different-answer pairs may score >= tau (be merged); ``same_split``: at
most a share of the same-answer pairs may score < tau (be split). :func:`choose_tau` picks the threshold;
:func:`tau_from_record` reads the choice an export recorded (``python -m deepprune.train`` makes it on the
calibrated validation scores, `deepprune.judge.calibration`) or makes another one on the pairs it recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from deepprune.judge.reliability import as_labels, as_scores

__all__ = ["TAU_TARGETS", "TauChoice", "choose_tau", "tau_from_record"]


# tau=auto targets: what share of which pairs the threshold may get wrong on the validation pairs.
TAU_TARGETS = {
    "false_merge": "at most `rate` of the different-answer pairs score >= tau (would be merged)",
    "same_split": "at most `rate` of the same-answer pairs score < tau (would be split)",
}


@dataclass(frozen=True)
class TauChoice:
    """A threshold chosen on validation pairs, its target, and what it achieves there."""

    tau: float
    target: str
    rate: float
    false_merge_rate: float  # different-answer pairs scoring >= tau
    same_merge_rate: float  # same-answer pairs scoring >= tau
    pairs: int

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"tau=auto -> {self.tau:.4g} ({self.target} <= {self.rate:g} on {self.pairs} validation pairs: "
            f"merges {self.same_merge_rate:.3f} of same-answer, {self.false_merge_rate:.3f} of different-answer pairs)"
        )


def choose_tau(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    target: str = "false_merge",
    rate: float = 0.1,
) -> TauChoice:
    """The threshold meeting ``target`` at ``rate`` on validation pairs that merges the most same-answer pairs.

    ``false_merge``: the smallest observed score above the ``(floor(rate * N) + 1)``-th largest different-answer
    score, so at most ``floor(rate * N)`` of the ``N`` different-answer pairs reach it (the next float above that
    score when no observed score is larger). ``same_split``: the ``floor(rate * P)``-th smallest same-answer score
    (0-based), as :func:`deepprune.judge.metrics.tnr_at_fnr`. Scores are the ones the judge gives online (the
    calibrated ones where the export has a calibration); pairs merge when they score >= tau.
    """
    if target not in TAU_TARGETS:
        raise ValueError(f"tau target must be one of {sorted(TAU_TARGETS)}, got {target!r}")
    if not 0 <= rate <= 1:
        raise ValueError(f"tau target rate must be in [0, 1], got {rate}")
    s = as_scores(scores)
    y = as_labels(labels, len(s))
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(
            f"tau=auto needs same-answer and different-answer validation pairs, got {len(pos)} and {len(neg)}"
        )
    if target == "same_split":
        from deepprune.judge.metrics import tnr_at_fnr

        _, tau = tnr_at_fnr(s, y, rate)
    else:
        allowed = int(math.floor(rate * len(neg)))
        if allowed >= len(neg):
            tau = float(s.min())
        else:
            bar = float(np.sort(neg)[::-1][allowed])  # the largest different-answer score that must stay below
            above = s[s > bar]
            tau = float(above.min()) if above.size else math.nextafter(bar, math.inf)
    return TauChoice(
        tau=tau,
        target=target,
        rate=float(rate),
        false_merge_rate=float(np.mean(neg >= tau)),
        same_merge_rate=float(np.mean(pos >= tau)),
        pairs=int(len(s)),
    )


def tau_from_record(
    record: Mapping[str, Any] | None, target: str | None = None, rate: float | None = None
) -> TauChoice:
    """``tau=auto`` for an exported judge: the threshold its export recorded, or one chosen for another
    ``target``/``rate`` on the (calibrated) validation pairs it recorded.

    A judge without a validation record (not exported by ``python -m deepprune.train`` with calibration, or not a
    trained judge at all) raises: ``auto`` has nothing to be chosen on.
    """
    record = record or {}
    recorded = record.get("tau_auto")
    pairs = record.get("validation_pairs")
    if not recorded and not pairs:
        raise ValueError(
            "tau=auto needs a judge with a validation record (an export of `python -m deepprune.train` with "
            "calibration, which records tau_auto and its validation pairs); this judge has none: set tau=<0..1>"
        )
    if recorded and target in (None, recorded["target"]) and rate in (None, recorded["rate"]):
        return TauChoice(**recorded)
    if not pairs:
        raise ValueError(f"tau=auto for {target} {rate}: the export records only {recorded}, no validation pairs")
    target = target if target is not None else (recorded or {}).get("target", "same_split")
    rate = rate if rate is not None else (recorded or {}).get("rate", 0.2)
    return choose_tau(pairs["scores"], pairs["labels"], target, float(rate))
