#!/usr/bin/env bash
# Issue #17's campaign on a CPU: ResNet-110 on the paper's schedule (64k iterations, warm-up, lr 0.1),
# the runs of `--plan campaign110`, grown together in stages of STEP iterations (in each stage the
# pilot's four runs first), two generator processes with one thread each (the best aggregate on 2 cores,
# docs/benchmarks.md), at low priority so the test command keeps passing beside it.
# Resumable at any point: kill it, run it again (in this or a later session) and every run goes on
# from its last checkpoint (explorer/reference/resume/). Raw logs: $LOGS/gen-{a,b}.log.
#
#   scripts/cpu_campaign.sh [UNTIL_MAX] [STEP]     # defaults: 2000, 500
set -uo pipefail
cd "$(dirname "$0")/.."
UNTIL_MAX=${1:-2000}
STEP=${2:-500}
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-cache/campaign}
mkdir -p "$LOGS"
common=(--plan campaign110 --schedule paper --set dataset=folder:../shared/data/cifar10-jpeg.tar.gz
        --set log_every=20 --set eval_every=500 --threads 1 --device cpu)
worker() {  # $1: a|b; $2: this process's positions in the plan, the pilot's first
  local until=$STEP
  while [ "$until" -le "$UNTIL_MAX" ]; do  # every run reaches `until` before any goes further
    nice -n 10 "$PY" -u -m trainers reference "$LOGS/pack-$1.json" "${common[@]}" --pick "$2" --until "$until" \
      >>"$LOGS/gen-$1.log" 2>&1 || { echo "generator $1 failed at until=$until" >>"$LOGS/gen-$1.log"; return 1; }
    until=$((until + STEP))
  done
}
worker a 1,3,5,7 &
sleep 60  # the first process decodes the dataset into cache/data; the second then reads it
worker b 2,4,6,8 &
wait
