"""The Lightning DataModule that turns traces into tokenized, truncated trace pairs for the judge.

Pipeline (once, in `setup`): load traces -> split (by generating model, or by problem) -> exhaustive
same-problem pairs per split (`deepprune.pairs.build_pairs`, labels from the one answer checker) ->
optional seeded subsample per split (`max_pairs`, for CPU-scale runs) -> cut every trace once with the prefix
rule (a `deepprune.truncation.PrefixRule`: first k tokens of the judge's tokenizer, or up to the k-th reasoning
word; the same rule the export records and online pruning applies) -> `head.encode(a, b)`.
Batches are padded per batch by `PairCollator`; with `group_batch_traces` a training batch is every pair
among a few traces of one (problem, model) group (`deepprune.judge.samplers.GroupBatchSampler`, made for
siamese judges). The split itself is `deepprune.pairs.split_traces`, a pure function of the traces.
A split without pairs, or without one of the two classes, stops the run here, before any training, with
the counts of every split.

A mixture (``sources``, `deepprune.judge.mixture`): several sources, each split by its own settings (or held out
whole for val/test); every pair keeps its source name (feature ``source``, batch ``sources``) through validation
and test, and training batches are drawn from the train sources in proportion to their weights.
Loading, splitting and labelling need no head (`prepare_pairs`, which train.py calls before the model loads);
`setup` then cuts and encodes.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from deepprune.answers import AnswerClasses
from deepprune.judge.mixture import (
    SourceSpec,
    check_source_counts,
    class_counts,
    load_sources,
    mixture_report,
    problem_ids_by_source,
    source_pairs,
    source_specs,
)
from deepprune.judge.samplers import GroupBatchSampler, ShardedGroupBatches, SourceWeightedSampler
from deepprune.pairs import SPLITS, build_pairs, split_traces
from deepprune.runtime import get_logger, write_json
from deepprune.truncation import PrefixRule, TokenPrefix

log = get_logger(__name__)

SamplerFactory = Callable[[Sequence[int]], "Sampler[int] | None"]


@dataclass
class PairCollator:
    """Pad a list of encoded pairs into one batch.

    Each feature is ``{"input_ids": list[int], "label": int, "model": str, "texts": (a, b)}``; the batch holds
    ``input_ids``/``attention_mask`` [B, T] (T = longest), ``labels`` [B], pass-through lists (``models``, ...).

    >>> c = PairCollator(pad_token_id=0)
    >>> b = c([{"input_ids": [5, 6, 7], "label": 1, "model": "m", "texts": ("a", "b")},
    ...        {"input_ids": [8], "label": 0, "model": "m", "texts": ("c", "d")}])
    >>> b["input_ids"].tolist(), b["attention_mask"].tolist(), b["labels"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]], [1, 0])
    """

    pad_token_id: int
    padding_side: str = "right"

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            cols = slice(0, n) if self.padding_side == "right" else slice(longest - n, longest)
            ids[i, cols] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            mask[i, cols] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.as_tensor([int(f["label"]) for f in features], dtype=torch.long),
            "models": [f["model"] for f in features],
            "texts": [tuple(f["texts"]) for f in features],
            "indices": [int(f.get("index", -1)) for f in features],
            "sources": [f.get("source") for f in features],
            "problem_ids": [f.get("problem_id") for f in features],
        }


class PairDataset(Dataset):
    """Encoded pairs held in memory (a list of feature dicts for `PairCollator`)."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]

    @property
    def labels(self) -> list[int]:
        return [f["label"] for f in self.features]


class CachedAnswerClasses:
    """An answer checker's ``classes()`` remembered on disk, keyed by the group's answer list.

    Pair labels need an answer comparison per (trace, class) within each (problem, model) group, which costs
    seconds per group when sympy is involved; a sweep or a rerun on the same traces then pays nothing.
    The file is one JSON object; `save()` writes it atomically.
    """

    def __init__(self, checker: AnswerClasses, path: str | Path) -> None:
        self.checker, self.path = checker, Path(path)
        self.table: dict[str, list[int | None]] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.hits = self.misses = 0

    def classes(self, answers: Sequence[str | None]) -> list[int | None]:
        # the checker's semantics version keeps verdicts of an older checker out (their labels may differ)
        version = getattr(self.checker, "SEMANTICS_VERSION", "")
        key = f"{type(self.checker).__name__}{version}" + json.dumps(list(answers), ensure_ascii=False)
        if key in self.table:
            self.hits += 1
        else:
            self.misses += 1
            self.table[key] = list(self.checker.classes(answers))
        return list(self.table[key])

    def save(self) -> None:
        if self.misses:
            write_json(self.path, self.table)


class PairDataModule(L.LightningDataModule):
    """Train/val/test trace pairs for the judge.

    Args:
        traces: the traces, or a zero-argument callable returning them (a Hydra ``_partial_`` source, so
            loading waits until `setup`).
        head: the judge head; its ``encode(a, b)`` tokenizes a pair, ``pad_token_id`` pads, and its
            ``tokenizer`` counts tokens for a rule with ``tokenizer="judge"``.
        truncation: the prefix rule (``conf/truncation/``): `deepprune.truncation.TokenPrefix` (default: the
            first 500 tokens of the judge's tokenizer) or `deepprune.truncation.WordPrefix`.
        split: ``"model"``: whole generating models held out: test on ``test_models``, validate on ``val_models``
            or, when that is empty, on the training models (so checkpoint selection never sees a test model).
            With ``disjoint_problems`` (default) the three sides also use disjoint problems (a seeded
            ``val_fraction``/``test_fraction`` problem split), so the test is on unseen models AND unseen problems.
            ``"problem"``: one problem-disjoint split over all models.
        sampler: factory ``labels -> Sampler | None`` for the training set (None: shuffle).
        max_problems: cap on problems per split (int or per-split mapping), a seeded subsample taken before pairs
            are built (pair labels cost answer comparisons).
        max_pairs: cap per split (an int for all splits or ``{"train": n, "val": n, "test": n}``); a seeded
            random subsample, for CPU-scale runs.
        shuffle_order: swap (a, b) in a seeded half of the pairs so the judge cannot learn a position bias.
        seed: seeds the problem split, the subsample and the order swaps.
        checker: answer-class checker for the labels (None: `deepprune.answers.get_checker()`).
        label_cache: a JSON file remembering the checker's verdicts per group (`CachedAnswerClasses`), or None.
        group_batch_traces: when set (k), training batches are all the pairs among k traces of one
            (problem, model) group (`GroupBatchSampler`; for siamese judges, which embed each trace once per
            batch); ``batch_size`` and ``sampler`` then do not apply to training. Use ``max_pairs.train: null``
            so every pair among the drawn traces is available. Under DDP the stream is split over the ranks
            (`ShardedGroupBatches`).
        group_batches_per_epoch: batches per epoch with ``group_batch_traces`` (None: train pairs / C(k, 2)),
            shared by all ranks under DDP (each trains on ``group_batches_per_epoch // world_size``).
        sources: instead of ``traces``, a mixture ``name -> settings`` (`deepprune.judge.mixture`; each source's
            split settings default to the arguments above of the same name).
    """

    def __init__(
        self,
        traces: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
        head: Any = None,
        truncation: PrefixRule | None = None,
        split: str = "model",
        test_models: Sequence[str] = (),
        val_models: Sequence[str] = (),
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        sampler: SamplerFactory | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_problems: int | Mapping[str, int | None] | None = None,
        max_pairs: int | Mapping[str, int | None] | None = None,
        disjoint_problems: bool = True,
        shuffle_order: bool = True,
        padding_side: str = "right",
        seed: int = 0,
        checker: AnswerClasses | None = None,
        label_cache: str | Path | None = None,
        group_batch_traces: int | None = None,
        group_batches_per_epoch: int | None = None,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if (traces is None) == (sources is None):
            raise ValueError("give either data.traces (one source) or data.sources (a mixture; data.traces: null)")
        if truncation is not None and not isinstance(truncation, PrefixRule):
            raise TypeError(f"truncation must be a deepprune.truncation.PrefixRule, got {type(truncation).__name__}")
        if split not in ("model", "problem"):
            raise ValueError(f"data.split must be 'model' or 'problem', got {split!r}")
        if sources is None and split == "model" and not test_models:
            raise ValueError("data.split=model needs data.test_models (the generating models held out for test)")
        self.traces_source = traces
        self.head = head
        self.truncation = truncation if truncation is not None else TokenPrefix(500)
        self.split, self.test_models, self.val_models = split, list(test_models), list(val_models)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.sampler_factory = sampler
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.max_problems = self._per_split(max_problems, "max_problems")
        self.max_pairs = self._per_split(max_pairs, "max_pairs")
        self.disjoint_problems = disjoint_problems
        self.shuffle_order, self.padding_side, self.seed = shuffle_order, padding_side, int(seed)
        self.checker, self.label_cache = checker, label_cache
        self.group_batch_traces, self.group_batches_per_epoch = group_batch_traces, group_batches_per_epoch
        self.datasets: dict[str, PairDataset] = {}
        self.counts: dict[str, dict[str, int]] = {}
        #: the problems of each split after setup() (the export records those the judge saw: train and val)
        self.problem_ids: dict[str, list[str]] = {}
        #: a mixture's problems per source and split (problem ids of different sources may coincide)
        self.problem_ids_by_source: dict[str, dict[str, list[str]]] = {}
        defaults = {"split": split, "test_models": test_models, "val_models": val_models, "val_fraction": val_fraction,
                    "test_fraction": test_fraction, "disjoint_problems": disjoint_problems,
                    "max_problems": max_problems, "max_pairs": max_pairs, "label_cache": label_cache}  # fmt: skip
        self.sources: list[SourceSpec] | None = None if sources is None else source_specs(sources, defaults)
        if self.sources is not None:  # a mixture loads as one source does, in setup: (traces by name, skipped)
            self.traces_source = functools.partial(load_sources, self.sources)
        self.skipped_sources: dict[str, str] = {}
        #: per source and split, as `counts` (mixtures only)
        self.source_counts: dict[str, dict[str, dict[str, int]]] = {}
        self._pairs: dict[str, list[tuple[str | None, Any]]] | None = None  # split -> [(source, TracePair)]

    @staticmethod
    def _per_split(value: int | Mapping[str, int | None] | None, key: str) -> dict[str, int | None]:
        if value is None or isinstance(value, int):
            return dict.fromkeys(SPLITS, value)
        unknown = set(value) - set(SPLITS)
        if unknown:
            raise ValueError(f"data.{key}: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
        return {s: value.get(s) for s in SPLITS}

    @property
    def rule(self) -> PrefixRule:
        """The prefix rule the pairs use, bound to the head's tokenizer where it counts with the judge's."""
        return self.truncation.bind(getattr(self.head, "tokenizer", None))

    def prepare_pairs(self) -> None:
        """Load, split, label, subsample and check the pairs; needs no head, so a bad split stops the run before
        the model loads (train.py calls it first). `setup` calls it when it has not run."""
        if self._pairs is not None:
            return
        caches: dict[str, CachedAnswerClasses] = {}  # one table per file: sources sharing a file share it

        def checker_for(path: str | Path | None) -> Any:
            if path is None:
                return self.checker
            if str(path) not in caches:
                from deepprune.answers import get_checker

                caches[str(path)] = CachedAnswerClasses(self.checker or get_checker(), path)
            return caches[str(path)]

        if self.sources is None:
            traces = self.traces_source() if callable(self.traces_source) else self.traces_source
            parts = split_traces(
                traces, self.split, self.test_models, self.val_models, self.val_fraction, self.test_fraction,
                self.disjoint_problems, self.seed, self.max_problems,
            )  # fmt: skip
            checker = checker_for(self.label_cache)
            built = {name: build_pairs(part, checker=checker) for name, part in parts.items()}
            sides = {None: {name: (ps.excluded_traces, ps.pairs) for name, ps in built.items()}}
            self.problem_ids = {name: sorted({str(t.problem_id) for t in part}) for name, part in parts.items()}
        else:
            loaded, self.skipped_sources = self.traces_source()
            specs = [spec for spec in self.sources if spec.name in loaded]
            sides = {
                spec.name: source_pairs(spec, loaded[spec.name], checker_for(spec.settings["label_cache"]), self.seed)
                for spec in specs
            }
            by_source = self.problem_ids_by_source = problem_ids_by_source(sides)
            self.problem_ids = {n: sorted({i for ids in by_source.values() for i in ids[n]}) for n in SPLITS}
        for path, cache in caches.items():
            cache.save()
            log.info("pair labels: %d groups from %s, %d computed", cache.hits, path, cache.misses)
        self._pairs = {name: [] for name in SPLITS}
        self.counts = {name: dict.fromkeys(("traces_excluded", "pairs_total", "pairs", "same", "different"), 0)
                       for name in SPLITS}  # fmt: skip
        for source, by_split in sides.items():
            spec = None if source is None else next(s for s in self.sources or () if s.name == source)
            for name, (excluded, all_pairs) in by_split.items():
                caps = self.max_pairs if spec is None else self._per_split(spec.settings["max_pairs"], "max_pairs")
                ps = self._subsample(name if source is None else f"{source}-{name}", all_pairs, caps[name])
                self._pairs[name].extend((source, p) for p in ps)
                same = sum(p.label for p in ps)
                count = {"traces_excluded": excluded, "pairs_total": len(all_pairs), "pairs": len(ps), "same": same,
                         "different": len(ps) - same}  # fmt: skip
                if source is not None:
                    self.source_counts.setdefault(source, {})[name] = count
                self.counts[name] = {k: self.counts[name][k] + v for k, v in count.items()}
        if self.sources is not None:
            check_source_counts(self.sources, self.source_counts, self.counts["val"]["pairs"])
        self._check_counts()

    def mixture_report(self) -> dict[str, Any]:
        """What metrics.json records about a mixture (`deepprune.judge.mixture.mixture_report`); {} for one source."""
        return {} if self.sources is None else mixture_report(self.sources, self.source_counts, self.skipped_sources)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.head is None:
            raise ValueError("PairDataModule needs a head (for encode/pad_token_id) before setup()")
        self.prepare_pairs()
        truncate, cache = self.rule.cut, {}

        def prefix(text: str) -> str:
            if text not in cache:  # each trace is truncated once, however many pairs it is in
                cache[text] = truncate(text)
            return cache[text]

        for name, ps in (self._pairs or {}).items():
            rng = random.Random(f"{self.seed}-order-{name}")
            features = []
            for source, p in ps:
                a, b = prefix(p.a.text), prefix(p.b.text)
                if self.shuffle_order and rng.random() < 0.5:
                    a, b = b, a
                group = f"{p.a.problem_id}\x1f{p.a.model}"
                features.append(
                    {
                        "index": len(features),  # tells a pair apart from DistributedSampler's padding repeats
                        "input_ids": self.head.encode(a, b),
                        "label": int(p.label),
                        "model": str(p.a.model),
                        # sources may share problem ids ("0", "1", ...): a mixture's groups are per source
                        "group": group if source is None else f"{source}\x1f{group}",
                        "texts": (a, b),
                        "source": source,
                        "problem_id": str(p.a.problem_id),
                    }
                )
            self.datasets[name] = PairDataset(features)
        for name, c in self.counts.items():
            lengths = [len(f["input_ids"]) for f in self.datasets[name].features]
            log.info(
                "%s: %d pairs (%d same, %d different; %d before max_pairs), %d traces without answer, "
                "max %d tokens",
                name, c["pairs"], c["same"], c["different"], c["pairs_total"], c["traces_excluded"], max(lengths),
            )  # fmt: skip
        if self.source_counts:
            log.info("pairs (same, different) per source: %s", class_counts(self.source_counts))

    def _subsample(self, tag: str, pairs: list[Any], cap: int | None) -> list[Any]:
        if cap is None or len(pairs) <= cap:
            return list(pairs)
        keep = sorted(random.Random(f"{self.seed}-subsample-{tag}").sample(range(len(pairs)), cap))
        return [pairs[i] for i in keep]

    def _check_counts(self) -> None:
        bad = [n for n, c in self.counts.items() if c["same"] == 0 or c["different"] == 0]
        if bad:
            table = "; ".join(
                f"{n}: {c['pairs']} pairs ({c['same']} same, {c['different']} different)"
                for n, c in self.counts.items()
            )
            hint = (
                f"Check data.split ({self.split}), data.test_models {self.test_models}, "
                f"data.val_models {self.val_models} and data.max_pairs."
                if self.sources is None
                else f"Check the data.sources.<name> settings; (same, different): {class_counts(self.source_counts)}"
            )
            raise ValueError(
                f"split {'/'.join(bad)} has no pairs of one class, so it cannot be trained or scored: {table}. {hint}"
            )

    def _collator(self) -> PairCollator:
        return PairCollator(pad_token_id=int(self.head.pad_token_id), padding_side=self.padding_side)

    def _loader(self, name: str, batch_size: int, train: bool = False) -> DataLoader:
        if name not in self.datasets:
            self.setup()
        sampler = self.sampler_factory(self.datasets[name].labels) if train and self.sampler_factory else None
        if train and self.group_batch_traces:
            if sampler is not None:
                raise ValueError(
                    "data.group_batch_traces builds its own training batches, so the sampler group does not apply: "
                    "use sampler=plain, or data.group_batch_traces=null to train on sampled random batches"
                )
            features = self.datasets[name].features
            k = int(self.group_batch_traces)
            batches = self.group_batches_per_epoch or max(1, -(-len(features) // (k * (k - 1) // 2)))
            sampler = GroupBatchSampler(
                [f["group"] for f in features], [f["texts"] for f in features], k, batches, self.seed,
                **self._source_draw(features),
            )  # fmt: skip
            trainer = getattr(self, "trainer", None)
            if trainer is not None and trainer.world_size > 1:
                # Lightning can shard neither a custom batch sampler nor an iterable: the iterable shards itself.
                # No workers: the batches are pre-tokenized, and each worker would replay the whole stream.
                shard = ShardedGroupBatches(
                    self.datasets[name], sampler, self._collator(), trainer.global_rank, trainer.world_size
                )
                return DataLoader(shard, batch_size=None)
            return DataLoader(
                self.datasets[name],
                batch_sampler=sampler,
                collate_fn=self._collator(),
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        if train and self._source_draw(self.datasets[name].features):
            if sampler is not None:
                raise ValueError(
                    "data.sources: random training batches are drawn by source weight, so the sampler group does "
                    "not apply to a mixture of several train sources: use sampler=plain"
                )
            sampler = SourceWeightedSampler(**self._source_draw(self.datasets[name].features), seed=self.seed)
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            collate_fn=self._collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _source_draw(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``{sources, weights}`` for a sampler that draws by source weight; {} for one source (plain draws)."""
        present = {f["source"] for f in features}
        if self.sources is None or len(present) < 2:
            return {}
        return {"sources": [f["source"] for f in features], "weights": {s.name: s.weight for s in self.sources}}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)
