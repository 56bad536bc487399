#!/usr/bin/env bash
# Issue 12 judge families at equal CPU budget (conf/experiment/issue12_judge_families.yaml), one sweep dir per
# family so a partial run is still summarized, then the table:
#   bash experiments/issue12_judge_families/run.sh [family ...]
set -euo pipefail
OUT=${OUT:-logs/issue12_families}
FAMILIES=${*:-siamese128_blend siamese256_blend cross128 smollm2_lora siamese512_blend}
for f in $FAMILIES; do
  [ -f "$OUT/$f/done" ] && continue
  # the experiment's sweep with one family (a key with "+" cannot be overridden alone)
  nice -n 5 python -m deepprune.train experiment=issue12_judge_families \
    "hydra.sweeper.params={+judge_family: $f, seed: '1,2,3', optimized_metric: val/auroc_source_mean}" \
    hydra.sweep.dir="$OUT/$f"
  touch "$OUT/$f/done"
done
python experiments/issue12_judge_families/summarize.py "$OUT"/*/ --out experiments/issue12_judge_families/results.md
