#!/usr/bin/env bash
# Fill the reference pack on one GPU: ONE prepared script for a session that has a GPU machine
# (issue #12). Within BUDGET_S (default 470 s, under 8 min) on one H100/H200, most valuable first:
# ResNet-110 original vs full pre-activation, then Table 1's shortcut variants, all on the `short`
# schedule (8k iterations, ~100 s each alone at ~9.9k img/s; PARALLEL processes share the GPU, a
# batch of 128 leaves an H100 mostly idle). A run that the previous one's wall time says will not
# finish in time is not started; every finished run is packed at once. Needs torch, torchvision,
# pillow; no streamlit, plotly or diskcache. Files in $OUT (at most 8, for the device tool):
#
#   log.txt                  environment and each step
#   gen-<i>.log              the raw log of generator process i (every iteration, every eval)
#   reference-gpu.json       the pack: merged from the processes, with what is already in it
#
# The paper's schedule (64k iterations, ~14 min per ResNet-110 run on an H200) does not fit one
# session's 8 minutes: SCHEDULE=paper RUNS=2 starts them, and they resume from their checkpoints
# (cache/gpu_reference, git-ignored) on a machine that stays warm; they are packed when finished.
#
# Usage, from the repository root on the device machine:
#   bash scripts/gpu_reference.sh [path/to/cifar10-jpeg.tar.gz]
# The tarball is looked for at $1, $CIFAR_TARBALL, shared/data/, cache/, ../shared/data/. To send
# it with the working tree, copy ../shared/data/cifar10-jpeg.tar.gz to cache/ (git-ignored) and name
# "cache/cifar10-jpeg.tar.gz" in the device tool's `carry`. Afterwards, here:
#   cp <files_at>/reference-gpu.json explorer/reference/gpu-<date>.json   (plus gen-*.log beside it)
# Dry run of the flow on a CPU (tiny sizes, numbers meaningless):
#   DEVICE=cpu SCHEDULE=smoke RUNS=3 PARALLEL=2 SET="depth=8 dataset=synthetic iterations=4" \
#   PYTHON=.venv/bin/python OUT=/tmp/gpu_reference bash scripts/gpu_reference.sh

set -u
OUT=${OUT:-out/gpu_reference}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-470}
SCHEDULE=${SCHEDULE:-short}
RUNS=${RUNS:-8}          # the first RUNS of the teaching plan (trainers/core/reference_packs.py)
PARALLEL=${PARALLEL:-3}  # generator processes sharing the device
DEVICE=${DEVICE:-cuda}
CACHE=${GPU_REFERENCE_CACHE:-cache/gpu_reference}
SET=${SET:-}             # extra FIELD=VALUE overrides, space-separated
START=$(date +%s)
export PYTHONUNBUFFERED=1

left() { echo $((BUDGET_S - ($(date +%s) - START))); }
log() { echo "[$(date -u +%H:%M:%S) +$(($(date +%s) - START))s] $*" | tee -a "$OUT/log.txt"; }

TARBALL=""
for t in "${1:-}" "${CIFAR_TARBALL:-}" shared/data/cifar10-jpeg.tar.gz cache/cifar10-jpeg.tar.gz \
  ../shared/data/cifar10-jpeg.tar.gz; do
  # relative to the repository root, as the engine reads it: no machine-specific path in the keys
  if [[ -n "$t" && -f "$t" ]]; then TARBALL=$(realpath --relative-to=. "$t"); break; fi
done
SETS=()
[[ -n "$TARBALL" ]] && SETS+=(--set "dataset=folder:$TARBALL")
for s in $SET; do SETS+=(--set "$s"); done  # later --set wins: SET can replace the dataset

log "gpu_reference: schedule $SCHEDULE, first $RUNS runs, $PARALLEL processes, budget ${BUDGET_S}s, tarball ${TARBALL:-none}"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| CUDA', torch.version.cuda, '| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
  git rev-parse --short=12 HEAD 2>/dev/null || true
  "$PY" -m trainers reference /dev/null --dry-run --schedule "$SCHEDULE" --runs "$RUNS" "${SETS[@]}"
} 2>&1 | tee -a "$OUT/log.txt"

if [[ -z "$TARBALL" && " $SET " != *" dataset="* ]]; then
  log "no CIFAR-10 JPEG copy found and no dataset= in SET: nothing to train on"; exit 2
fi
# Decode the JPEG copy once, before the processes start (they share the decoded cache).
if [[ -n "$TARBALL" && " $SET " != *" dataset="* ]]; then
  log "decoding $TARBALL into $CACHE"
  "$PY" -c "from trainers.engine.data import load_dataset; d = load_dataset('folder:$TARBALL', '$CACHE'); \
print(d.label, tuple(d.train_x.shape), tuple(d.test_x.shape))" 2>&1 | tee -a "$OUT/log.txt"
fi

# Process i trains plan positions i, i+PARALLEL, ...: the headline pair starts first, side by side.
pids=()
for ((i = 1; i <= PARALLEL && i <= RUNS; i++)); do
  picks=$(seq -s, "$i" "$PARALLEL" "$RUNS")
  log "process $i: plan positions $picks"
  timeout $(($(left) + 120)) "$PY" -m trainers reference "$OUT/part-$i.json" --pick "$picks" \
    --schedule "$SCHEDULE" --runs "$RUNS" "${SETS[@]}" --device "$DEVICE" --cache-dir "$CACHE" \
    --budget-s "$(left)" --note "GPU session $(date -u +%F): $SCHEDULE schedule" >"$OUT/gen-$i.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || log "a generator process ended with status $?"; done

# One pack from every finished run (no training here), merged with the parts' provenance.
merges=()
for f in "$OUT"/part-*.json; do [[ -f "$f" ]] && merges+=(--merge "$f"); done
"$PY" -m trainers reference "$OUT/reference-gpu.json" --pack-only --schedule "$SCHEDULE" --runs "$RUNS" \
  "${SETS[@]}" --cache-dir "$CACHE" "${merges[@]}" 2>&1 | tail -n 3 | tee -a "$OUT/log.txt"
rm -f "$OUT"/part-*.json
grep -h "test error\|^reference:" "$OUT"/gen-*.log | grep -v "^it " | tee -a "$OUT/log.txt" >/dev/null
log "done: $(grep -c '"key"' "$OUT/reference-gpu.json" 2>/dev/null || echo 0) runs in $OUT/reference-gpu.json"
