#!/usr/bin/env bash
# Issue 12 judge families at equal CPU budget (conf/experiment/issue12_judge_families.yaml): one sweep dir per
# family and seed, so an interrupted run resumes with the jobs it has not finished; then the table:
#   bash experiments/issue12_judge_families/run.sh [family ...]
set -euo pipefail
OUT=${OUT:-logs/issue12_cpu}
SEEDS=${SEEDS:-1 2 3}
FAMILIES=${*:-siamese128_blend siamese256_blend cross128 smollm2_lora siamese512_blend}
for s in $SEEDS; do
  for f in $FAMILIES; do
    # finished: train writes wall_time_s last (the test pass writes a metrics.json of its own before the blend)
    grep -qs '"wall_time_s"' "$OUT/$f/seed$s/0/metrics.json" && continue
    extra=()
    # SmolLM2's passes over the validation pairs take minutes: no calibration pass and no export (neither changes
    # a test AUROC)
    [ "$f" = smollm2_lora ] && extra=(calibration=null export=false)
    # the experiment's sweep with one family and seed (a key with "+" cannot be overridden alone)
    nice -n 5 python -m deepprune.train experiment=issue12_judge_families \
      "hydra.sweeper.params={+judge_family: $f, seed: '$s', optimized_metric: val/auroc_source_mean}" \
      hydra.sweep.dir="$OUT/$f/seed$s" "${extra[@]}"
  done
done
python experiments/issue12_judge_families/summarize.py "$OUT"/*/seed*/ --out experiments/issue12_judge_families/results.md
