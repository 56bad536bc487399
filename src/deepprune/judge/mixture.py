"""A weighted mixture of trace sources for the judge's data module (``data.sources`` in ``conf/data/mixture.yaml``).

A mixture is a mapping ``name -> settings``; each source's settings are

- ``traces``: a zero-argument loader (a Hydra ``_partial_`` of a ``deepprune.sources`` loader), required;
- ``role``: ``train`` (its traces are split into train/val/test with the source's own split settings) or
  ``heldout`` (the whole source goes to validation and/or test, never to train: the split by source);
- ``weight`` (> 0, train role): training batches are drawn from the train sources with probabilities
  proportional to their weights;
- ``validate`` / ``test`` (booleans, default true): whether the source's val / test side is kept. A held-out
  source with both is split by problem (``val_fraction`` of its problems to validation, the rest to test,
  stratified so both sides get problems whose pairs hold both answer classes); with one, all of it goes there;
- ``optional`` (default false): when its files are missing the source is skipped with a warning (and recorded
  in metrics.json); a required source stops the run, naming the key and the path;
- ``swap_sides`` (default false, held-out role): the val and test sides exchanged. With ``val_fraction`` 0.5 a run
  with it and one without test on complementary halves of the source (a 2-fold cross-fit), so a source with few
  problems that split their samples is measured on all of them;
- split settings (``split``, ``test_models``, ``val_models``, ``val_fraction``, ``test_fraction``,
  ``disjoint_problems``, ``max_problems``, ``max_pairs``, ``label_cache``): as the data module's keys of the
  same name, which are their defaults.

:func:`check_sources` rejects a bad mixture by its key (``data.sources.<name>.<key>``) before anything loads;
:func:`load_sources` reads the sources. This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepprune.runtime import get_logger

log = get_logger(__name__)

ROLES = ("train", "heldout")
#: per-source split settings whose default is the data module's key of the same name
SPLIT_KEYS = (
    "split",
    "test_models",
    "val_models",
    "val_fraction",
    "test_fraction",
    "disjoint_problems",
    "max_problems",
    "max_pairs",
    "label_cache",
)
SOURCE_KEYS = ("traces", "role", "weight", "validate", "test", "optional", "swap_sides", *SPLIT_KEYS)
PREFIX = "data.sources"


@dataclass
class SourceSpec:
    """One source of a mixture, its settings filled in from the data module's defaults."""

    name: str
    traces: Callable[[], Any] | Any
    role: str = "train"
    weight: float = 1.0
    validate: bool = True
    test: bool = True
    optional: bool = False
    # a held-out source's val and test sides exchanged: with val_fraction 0.5, the other fold of a 2-fold cross-fit
    swap_sides: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # SPLIT_KEYS -> value

    def key(self, key: str) -> str:
        """The config key of one of this source's settings, as error messages name it."""
        return f"{PREFIX}.{self.name}.{key}"


def check_sources(sources: Mapping[str, Any] | None) -> None:
    """Reject an unusable mixture, naming ``data.sources.<name>.<key>``; None (no mixture) passes.

    Checked: a mapping of mappings, known keys, a ``traces`` entry, a known ``role``, ``weight > 0``, boolean
    ``validate``/``test``/``optional``, a held-out source that feeds validation or test, at least one train source.
    """
    if sources is None:
        return
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError(f"{PREFIX} must be a non-empty mapping of source name -> settings, got {sources!r:.80}")
    for name, spec in sources.items():
        where = f"{PREFIX}.{name}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a mapping of settings (traces, role, weight, ...), got {spec!r:.80}")
        unknown = sorted(set(spec) - set(SOURCE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; a source takes {list(SOURCE_KEYS)}")
        if spec.get("traces") is None:
            raise ValueError(f"{where}.traces is missing: a source needs a loader (e.g. a deepprune.sources partial)")
        role = spec.get("role", "train")
        if role not in ROLES:
            raise ValueError(f"{where}.role={role!r} is invalid: `{where}.role` must be one of {list(ROLES)}")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"{where}.weight={weight!r} is invalid: `{where}.weight` must be a number > 0")
        for flag in ("validate", "test", "optional", "swap_sides"):
            if not isinstance(spec.get(flag, True), bool):
                raise ValueError(f"{where}.{flag}={spec.get(flag)!r} is invalid: `{where}.{flag}` must be true/false")
        if spec.get("swap_sides", False) and (
            role != "heldout" or not (spec.get("validate", True) and spec.get("test", True))
        ):
            raise ValueError(
                f"{where}.swap_sides=true needs role=heldout with validate and test true (it exchanges the two sides "
                f"of a held-out source); got role={role!r}, validate={spec.get('validate', True)}, "
                f"test={spec.get('test', True)}"
            )
        if role == "heldout" and not spec.get("validate", True) and not spec.get("test", True):
            raise ValueError(
                f"{where}: a held-out source with validate=false and test=false is never used; "
                f"set {where}.validate or {where}.test to true"
            )
    if not any(spec.get("role", "train") == "train" for spec in sources.values()):
        raise ValueError(f"{PREFIX}: no source has role=train, so there is nothing to train on; roles: "
                         f"{ {n: s.get('role', 'train') for n, s in sources.items()} }")  # fmt: skip


def source_specs(sources: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[SourceSpec]:
    """Checked specs in config order, each split setting defaulting to ``defaults`` (the data module's own)."""
    check_sources(sources)
    specs = []
    for name, spec in sources.items():
        settings = {k: spec[k] if k in spec else defaults.get(k) for k in SPLIT_KEYS}
        specs.append(
            SourceSpec(
                name=str(name),
                traces=spec["traces"],
                role=str(spec.get("role", "train")),
                weight=float(spec.get("weight", 1.0)),
                validate=bool(spec.get("validate", True)),
                test=bool(spec.get("test", True)),
                optional=bool(spec.get("optional", False)),
                swap_sides=bool(spec.get("swap_sides", False)),
                settings=settings,
            )
        )
    return specs


def load_sources(specs: list[SourceSpec]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """``(traces by source, skipped)``: each loader called once; an optional source whose files are missing is
    skipped with a warning (``skipped[name]`` says why), a required one raises naming its key and the path."""
    loaded: dict[str, list[Any]] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            traces = spec.traces() if callable(spec.traces) else spec.traces
        except FileNotFoundError as e:
            if not spec.optional:
                raise FileNotFoundError(f"{spec.key('traces')}: {e} (set {spec.key('optional')}=true to skip)") from e
            log.warning("%s is optional and its files are missing, so it is skipped: %s", spec.key("traces"), e)
            skipped[spec.name] = f"files missing: {e}"
            continue
        loaded[spec.name] = list(traces)
        if not loaded[spec.name]:
            raise ValueError(f"{spec.key('traces')}: the source has no traces")
    if not any(s.role == "train" and s.name in loaded for s in specs):
        raise ValueError(f"{PREFIX}: every train source was skipped ({skipped}); nothing to train on")
    return loaded, skipped


def source_pairs(spec: SourceSpec, traces: list[Any], checker: Any, seed: int) -> dict[str, tuple[int, list[Any]]]:
    """``{side: (traces left out, labelled pairs)}`` of one source, before ``max_pairs``.

    A train source is split by its own settings (`deepprune.pairs.split_traces`); a held-out source is labelled
    whole and its pairs split by problem between val and test (`deepprune.pairs.split_heldout_pairs`), never
    train. Sides the source does not feed (``validate``/``test`` false) are empty.
    """
    from deepprune.pairs import SPLITS, build_pairs, cap_pair_problems, split_heldout_pairs, split_traces

    s = spec.settings
    caps = s["max_problems"] if isinstance(s["max_problems"], Mapping) else dict.fromkeys(SPLITS, s["max_problems"])
    keep = {"train": spec.role == "train", "val": spec.validate, "test": spec.test}
    if spec.role == "train":
        if s["split"] not in ("model", "problem"):
            raise ValueError(f"{spec.key('split')}={s['split']!r} is invalid: must be 'model' or 'problem'")
        if s["split"] == "model" and not s["test_models"]:
            raise ValueError(f"{spec.key('split')}=model needs {spec.key('test_models')} (models held out for test)")
        try:
            parts = split_traces(
                traces, s["split"], list(s["test_models"] or ()), list(s["val_models"] or ()),
                float(s["val_fraction"]), float(s["test_fraction"]), bool(s["disjoint_problems"]), seed, caps,
            )  # fmt: skip
        except ValueError as e:
            raise ValueError(f"{PREFIX}.{spec.name}: {e}") from e
        out = {}
        for side, part in parts.items():
            built = build_pairs(part if keep[side] else [], checker=checker)
            out[side] = (built.excluded_traces, built.pairs)
        return out
    built = build_pairs(traces, checker=checker)
    if not built.pairs:
        raise ValueError(f"{PREFIX}.{spec.name}: the held-out source has no pairs ({built.excluded_traces} left out)")
    val, test = built.pairs, built.pairs
    if spec.validate and spec.test:
        try:
            val, test = split_heldout_pairs(built.pairs, float(s["val_fraction"]), f"{seed}-{spec.name}")
        except ValueError as e:
            raise ValueError(f"{spec.key('val_fraction')}: {e}") from e
        if spec.swap_sides:
            val, test = test, val
    sides = {"train": [], "val": val if spec.validate else [], "test": test if spec.test else []}
    first = "val" if spec.validate else "test"  # the traces left out are counted once, on the first side fed
    return {
        side: (
            built.excluded_traces if side == first else 0,
            cap_pair_problems(ps, caps.get(side), f"{seed}-{spec.name}-{side}"),
        )
        for side, ps in sides.items()
    }


def check_source_counts(specs: list[SourceSpec], counts: Mapping[str, Mapping[str, Any]], val_pairs: int) -> None:
    """After the pairs are built: each loaded train source has training pairs (its weight draws from them), and
    some source feeds validation (early stopping and checkpoint choice need it)."""
    for spec in specs:
        if spec.role == "train" and spec.name in counts and not counts[spec.name]["train"]["pairs"]:
            raise ValueError(
                f"{spec.key('role')}=train but the source has no training pairs ({dict(counts[spec.name])}); "
                "its weight would draw nothing"
            )
    if not val_pairs:
        feeds = {spec.key("validate"): spec.validate for spec in specs}
        raise ValueError(f"validation is empty: no source feeds it ({feeds}); early stopping needs one")


def mixture_report(specs: list[SourceSpec], counts: Mapping[str, Any], skipped: Mapping[str, str]) -> dict[str, Any]:
    """metrics.json's record of a mixture: each loaded source's role, weight, sides fed and pair counts per split
    (``data_sources``), and the optional sources skipped and why (``data_sources_skipped``)."""
    report = {
        spec.name: {
            "role": spec.role,
            "weight": spec.weight,
            "validate": spec.validate,
            "test": spec.test,
            "counts": counts[spec.name],
        }  # fmt: skip
        for spec in specs
        if spec.name in counts
    }
    return {"data_sources": report, "data_sources_skipped": dict(skipped)}


def class_counts(counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, tuple[int, int]]]:
    """``{source: {split: (same, different)}}``: the class balance of each source's pairs, for logs and errors."""
    return {name: {side: (c["same"], c["different"]) for side, c in sides.items()} for name, sides in counts.items()}


def problem_ids_by_source(sides: Mapping[str, Mapping[str, tuple[int, list[Any]]]]) -> dict[str, dict[str, list[str]]]:
    """The problem ids of each source's pairs per split, from ``{source: {split: (left out, pairs)}}``: problem ids of
    two sources may coincide, so what a judge saw is recorded per source (the export's ``seen_problems_by_source``)."""
    return {
        source: {split: sorted({str(t.problem_id) for p in ps for t in (p.a, p.b)}) for split, (_, ps) in by.items()}
        for source, by in sides.items()
    }
