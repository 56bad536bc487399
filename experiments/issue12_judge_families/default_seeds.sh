#!/usr/bin/env bash
# Issue 12: the embedded default (python -m deepprune.train, 3 epochs of 64 group batches, blended) and variants of
# it over several seeds (the seed draws the problem splits too), one run dir per variant and seed, resumable:
#   SEEDS="42 1 2 3" bash experiments/issue12_judge_families/default_seeds.sh [variant ...]   (default: default prior)
#   python experiments/issue12_judge_families/summarize.py logs/issue12_default/*/seed*/ --paired-to default
# No calibration and no export (neither changes a test AUROC). Results: experiments/issue12_judge_families/
# default_seeds.md. An unknown variant stops before any run.
set -euo pipefail
OUT=${OUT:-logs/issue12_default}
SEEDS=${SEEDS:-42 1 2 3}
declare -A VARIANT=(
  [default]=""
  [frozen4]="model.frozen_layers=4"
  [frozen6]="model.frozen_layers=6"
  [const]="~scheduler"
  [more_champ]="data.sources.champ.max_problems.train=120 data.sources.champ.max_problems.val=18"
  [prior]="model.pair_prior=true"
  [champ_w1]="data.sources.champ.weight=1"   # CHAMP : SkyThought group batches 1 : 1 (default 3 : 1)
  # the default validated on Qwen2.5-Math's test half and tested on its validation half: with default, a 2-fold
  # cross-fit of the held-out source at each seed
  [swap]="data.sources.qwen25_math.swap_sides=true"
)
VARIANTS=${*:-default prior}
for v in $VARIANTS; do
  [ -n "${VARIANT[$v]+set}" ] || { echo "unknown variant '$v'; known: ${!VARIANT[*]}" >&2; exit 2; }
done
for s in $SEEDS; do
  for v in $VARIANTS; do
    dir="$OUT/$v/seed$s"
    # finished: train writes wall_time_s last (the test pass writes a metrics.json of its own before the blend)
    grep -qs '"wall_time_s"' "$dir/metrics.json" && continue
    # shellcheck disable=SC2086
    nice -n 5 python -m deepprune.train seed="$s" calibration=null export=false hydra.run.dir="$dir" ${VARIANT[$v]}
  done
done
