#!/usr/bin/env bash
# Issue 11 evidence: the default trained judge (calibrated at export) on unseen CHAMP problems, over 8 seeded
# arrival orders, beside cons@18 (every job's reference, same orders) and the oracle. Usage:
#   bash experiments/issue11_robust_pruning/run.sh <train run dir>   (from `python -m deepprune.train`)
set -euo pipefail
RUN=${1:?the train run dir of python -m deepprune.train}
E=$RUN/export
OUT=${OUT:-logs/issue11}
# GPT-4 (N = 18): the default setting, tau=auto, fixed taus, the aggregation options, the oracle
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 \
  hydra.sweep.dir=$OUT/gpt4_default
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 \
  'tau=auto,0.2,0.3' hydra.sweep.dir=$OUT/gpt4_tau
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 \
  'aggregation=floor,size_weighted' hydra.sweep.dir=$OUT/gpt4_aggregation
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 \
  policy.when_full=assign hydra.sweep.dir=$OUT/gpt4_assign
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 \
  policy=oracle hydra.sweep.dir=$OUT/gpt4_oracle
# GPT-4 Turbo: the default and the floor
nice -n 10 python -m deepprune.online judge=exported judge.export_dir=$E orders=8 'source.models=[GPT-4 Turbo]' \
  'aggregation=largest_cluster,floor' hydra.sweep.dir=$OUT/gpt4turbo
