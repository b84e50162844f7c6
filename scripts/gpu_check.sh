#!/usr/bin/env bash
# The GPU check of the fast trainer: ONE prepared script for a session that has a GPU machine.
# At most 8 minutes on one H100/H200 including data decoding (BUDGET_S, default 470; torch 2.11+;
# needs torch, torchvision, pillow; no streamlit, plotly or diskcache). Order of priority:
#
#   1. the two ResNet-20 paper-schedule runs (original, full pre-activation; 64k iterations) start
#      first, concurrently (~22.9k img/s each on an H200: ~6 min); the small equivalence checks run
#      beside them (TF32 off, deterministic cuDNN); nothing else shares the GPU meanwhile;
#   2. when they end, each run's last checkpoint is evaluated in eval mode (BN running statistics)
#      on 10,000 training images: near the logged training error = the BN/eval path is sound;
#   3. benches only with the time that is left (each skipped when it would not fit).
#
# Everything raw goes to $OUT (at most 8 files, for the device tool):
#
#   log.txt                   environment, every step's progress, the human-readable bench reports
#   equivalence.json          graph == eager (TF32 off), packed == standalone, bf16/dropout/ragged smoke
#   bench.jsonl               one JSON line per `python -m trainers bench`, if time was left
#   fidelity_<ordering>.log   ResNet-20 paper schedule (64k iterations) on the CIFAR-10 JPEG copy
#   fidelity.jsonl            per run: result.json (test error, curve, provenance incl. recipe and
#                             TF32), then {"train_eval": ...} (eval-mode error on 10,000 train images)
#
# Usage, from the repository root on the device machine:
#   bash scripts/gpu_check.sh [path/to/cifar10-jpeg.tar.gz]
# The tarball is looked for at $1, $CIFAR_TARBALL, shared/data/, cache/, ../shared/data/. To send
# it with the working tree, copy ../shared/data/cifar10-jpeg.tar.gz to cache/ (git-ignored) and
# name "cache/cifar10-jpeg.tar.gz" in the device tool's `carry`.
# STEPS="fidelity equiv bench packed extra compile" picks steps; the fidelity runs are cut at the
# budget (their logs keep the curve so far; rerun on a warm machine and they resume from
# checkpoints, kept under cache/gpu_check).
# Knobs for a dry run of the flow on a CPU (tiny sizes, figures meaningless):
#   DEVICE=cpu FIDELITY_DATASET=synthetic EQUIV_STEPS=3 EQUIV_CONFIG='{"depth": 8, "batch_size": 16}' \
#   TRAIN_IMAGES_EVAL=200 \
#   BENCH_EXTRA="--depth 8 --batch-size 16 --steps 2 --rounds 1 --train-images 256" \
#   TRAIN_EXTRA="--depth 8 --iterations 10 --train-size 512 --test-size 256" \
#   PYTHON=.venv/bin/python bash scripts/gpu_check.sh

set -u
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-470}
STEPS=${STEPS:-"fidelity equiv bench packed extra compile"}
CACHE=${GPU_CHECK_CACHE:-cache/gpu_check}
DEVICE=${DEVICE:-cuda}
BENCH_EXTRA=${BENCH_EXTRA:-}  # appended to every bench command (argparse: the last flag wins)
TRAIN_EXTRA=${TRAIN_EXTRA:-}  # appended to the fidelity runs' train commands
FIDELITY_DATASET=${FIDELITY_DATASET:-}  # default: folder:<the JPEG tarball>
EQUIV_STEPS=${EQUIV_STEPS:-30}  # SGD steps per equivalence comparison
EQUIV_CONFIG=${EQUIV_CONFIG:-'{"depth": 20}'}  # the equivalence checks' RunConfig fields (JSON)
TRAIN_IMAGES_EVAL=${TRAIN_IMAGES_EVAL:-10000}  # training images for the eval-mode check
START=$(date +%s)
export PYTHONUNBUFFERED=1

left() { echo $((BUDGET_S - ($(date +%s) - START))); }
log() { echo "[$(date -u +%H:%M:%S) +$(($(date +%s) - START))s] $*" | tee -a "$OUT/log.txt"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
bench() {  # bench NAME MIN_SECONDS ARGS...: one bench line, skipped when too little time is left
  local name=$1 need=$2
  shift 2
  if (($(left) < need)); then log "skip bench $name: $(left) s left"; return; fi
  log "bench $name: $*"
  # shellcheck disable=SC2086
  timeout $(($(left) - 5)) "$PY" -m trainers bench --device "$DEVICE" --json-out "$OUT/bench.jsonl" "$@" $BENCH_EXTRA \
    2>&1 | grep -v '^{' | tee -a "$OUT/log.txt"
}

TARBALL=""
for t in "${1:-}" "${CIFAR_TARBALL:-}" shared/data/cifar10-jpeg.tar.gz cache/cifar10-jpeg.tar.gz \
  ../shared/data/cifar10-jpeg.tar.gz; do
  if [[ -n "$t" && -f "$t" ]]; then TARBALL=$(realpath "$t"); break; fi
done

log "gpu_check: steps [$STEPS], budget ${BUDGET_S}s, tarball ${TARBALL:-none}"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" -c "import torch, torchvision, sys, os; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| torchvision', torchvision.__version__, '| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), \
'| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, '| cores', os.cpu_count())"
  git rev-parse --short=12 HEAD 2>/dev/null || true
} 2>&1 | tee -a "$OUT/log.txt"

# Decode the JPEG copy once, before anything is timed (the two fidelity runs then share the cache).
if [[ -z "$FIDELITY_DATASET" && -n "$TARBALL" ]]; then FIDELITY_DATASET="folder:$TARBALL"; fi
if [[ "$FIDELITY_DATASET" == folder:* ]] && want fidelity; then
  log "decoding $FIDELITY_DATASET into $CACHE"
  "$PY" -c "from trainers.engine.data import load_dataset; d = load_dataset('$FIDELITY_DATASET', '$CACHE'); \
print(d.label, tuple(d.train_x.shape), tuple(d.test_x.shape))" 2>&1 | tee -a "$OUT/log.txt"
fi

# 1. Fidelity first: ResNet-20 original and full pre-activation, the paper's schedule (64k
#    iterations, batch 128, lr 0.1 with warm-up, /10 at 32k and 48k), on the JPEG copy of CIFAR-10,
#    in parallel (two processes share the GPU). Reference: the first ResNet paper's ResNet-20,
#    8.75% on the official CIFAR-10 (JPEG round-tripped images are not the same data).
fid_pids=()
if want fidelity; then
  if [[ -z "$FIDELITY_DATASET" ]]; then
    log "skip fidelity: no cifar10-jpeg.tar.gz found"
  elif (($(left) < 120)); then
    log "skip fidelity: $(left) s left"
  else
    limit=$(($(left) - 25))  # keep time for the eval-mode check and the summary
    log "fidelity runs on $FIDELITY_DATASET (cut after ${limit}s)"
    for ordering in original full_preact; do
      # shellcheck disable=SC2086
      timeout "$limit" "$PY" -m trainers train --dataset "$FIDELITY_DATASET" --depth 20 --ordering "$ordering" \
        --device "$DEVICE" --cache-dir "$CACHE" --checkpoint-every-s 30 $TRAIN_EXTRA \
        >"$OUT/fidelity_$ordering.log" 2>&1 &
      fid_pids+=($!)
    done
  fi
fi

# 2. Correctness on the GPU, beside the fidelity runs (small: ResNet-20, seconds of GPU): the
#    captured iteration is the eager iteration (TF32 off, deterministic cuDNN); a packed seed is its
#    standalone run; bf16, the dropout shortcut (RNG inside a graph) and a second batch shape work.
if want equiv; then
  log "equivalence checks (TF32 off, deterministic cuDNN), beside the fidelity runs"
  DEVICE="$DEVICE" EQUIV_STEPS="$EQUIV_STEPS" EQUIV_CONFIG="$EQUIV_CONFIG" timeout 200 "$PY" - "$OUT/equivalence.json" <<'EOF' >"$OUT/equiv.tmp" 2>&1 &
import json, math, os, sys, time
import torch
from trainers.engine import fast
from trainers.engine.augment import BatchSampler
from trainers.engine.bench import synthetic_cifar
from trainers.core.config import RunConfig
from trainers.engine.model import build_model
from trainers.engine.pack_state import pack_state_dicts, unpack_state_dict

# Tight comparisons: no TF32 and deterministic cuDNN algorithms in this process (the fidelity runs
# and the benches are other processes, with their own settings).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.deterministic = True
dev = torch.device(os.environ.get("DEVICE", "cuda"))
GRAPH = "graph" if dev.type == "cuda" else "eager"  # CPU dry run: the flow only, eager vs eager
N = int(os.environ.get("EQUIV_STEPS", "30"))
x, y = synthetic_cifar(4096)
X, Y = x.to(dev), y.to(dev)
mean = torch.tensor([0.49, 0.48, 0.45], device=dev)
std = torch.tensor([0.25, 0.24, 0.26], device=dev)
out = {}


def run(cfg, mode, steps, seeds=(0,), batches=None):
    sds = []
    for s in seeds:
        torch.manual_seed(s)
        sds.append(build_model(cfg).state_dict())
    model = build_model(cfg, packs=len(seeds))
    model.load_state_dict(pack_state_dicts(sds))
    model = model.to(dev, memory_format=torch.channels_last)
    opt = fast.make_optimizer(model, cfg, dev)
    step = fast.TrainStep(model, opt, X, Y, mean, std, augment=True, precision=cfg.precision,
                          channels_last=True, packs=len(seeds), mode=mode, cudnn_benchmark=False)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    samplers = [BatchSampler(len(Y), cfg.batch_size, g) for g in gens]
    step.set_lr(0.05)
    t = time.perf_counter()
    for i in range(steps):
        d = [fast.draw_batch(s, g, True) for s, g in zip(samplers, gens)]
        d = d[0] if len(d) == 1 else fast.stack_draws(d)
        if batches:  # a ragged batch now and then: another shape, its own warm-up and graph
            d = d[..., : batches[i % len(batches)]]
        step(d)
    losses, wrongs = step.take_metrics()
    step.synchronize()
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return unpack_state_dict(sd, len(seeds)), [l / (steps * cfg.batch_size) for l in losses], step, time.perf_counter() - t


def maxdiff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].dtype.is_floating_point)


def check(name, fn):
    try:
        out[name] = fn()
    except Exception as e:  # record and go on: one failure must not hide the others
        out[name] = {"error": f"{type(e).__name__}: {e}"}
    print(name, json.dumps(out[name]), flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1)  # after every check: a timeout keeps what ended


cfg = RunConfig.from_json(os.environ.get("EQUIV_CONFIG", '{"depth": 20}'))
B = cfg.batch_size


def graph_vs_eager():
    e, le, _, te = run(cfg, "eager", N)
    g, lg, st, tg = run(cfg, GRAPH, N)
    return {"max_abs_param_diff": maxdiff(e[0], g[0]), "loss_eager": le, "loss_graph": lg, "mode": GRAPH,
            "tf32": torch.backends.cudnn.allow_tf32,
            "graphs": len(st._graphs), "eager_s": te, "graph_s": tg}


def packed_vs_alone():
    p, lp, _, _ = run(cfg, GRAPH, N, seeds=(0, 1, 2))
    alone = [run(cfg, GRAPH, N, seeds=(s,)) for s in (0, 1, 2)]
    return {"max_abs_param_diff": [maxdiff(a[0][0], q) for a, q in zip(alone, p)],
            "loss_packed": lp, "loss_alone": [a[1][0] for a in alone]}


def bf16_graph():
    _, l, st, _ = run(cfg.replace(precision="bf16"), GRAPH, N)
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graphs": len(st._graphs)}


def dropout_graph():
    _, l, st, _ = run(cfg.replace(shortcut="dropout"), GRAPH, N)
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graphs": len(st._graphs)}


def ragged_graph():
    _, l, st, _ = run(cfg, GRAPH, max(N, 6), batches=[B, B, B * 3 // 4])
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graph_shapes": [list(s) for s in st._graphs]}


for name, fn in [("graph_vs_eager", graph_vs_eager), ("packed_vs_alone", packed_vs_alone),
                 ("bf16_graph", bf16_graph), ("dropout_graph", dropout_graph), ("ragged_graph", ragged_graph)]:
    check(name, fn)
json.dump(out, open(sys.argv[1], "w"), indent=1)
EOF
  equiv_pid=$!
fi


# Wait for the fidelity runs (the equivalence checks end long before), then the eval-mode check.
if ((${#fid_pids[@]})); then
  for p in "${fid_pids[@]}"; do wait "$p"; done
  for ordering in original full_preact; do
    tail -n 3 "$OUT/fidelity_$ordering.log" | tee -a "$OUT/log.txt"
  done
  log "eval-mode error of each run's last checkpoint on $TRAIN_IMAGES_EVAL training images"
  # shellcheck disable=SC2086
  timeout 90 "$PY" - "$CACHE" "$FIDELITY_DATASET" "$DEVICE" "$TRAIN_IMAGES_EVAL" $TRAIN_EXTRA \
    >>"$OUT/fidelity.jsonl" 2> >(tee -a "$OUT/log.txt" >&2) <<'EOF'
import argparse, json, sys
from pathlib import Path
from trainers.cli import add_config_arguments
from trainers.core.config import RunConfig
from trainers.engine.train import checkpoint_error

cache, dataset, device, images = sys.argv[1:5]
parser = argparse.ArgumentParser()
add_config_arguments(parser)
fields = [f for f in vars(parser.parse_args([])) if f != "config_json"]
for ordering in ("original", "full_preact"):
    # the very config the train command built: the same flags, TRAIN_EXTRA included
    args = vars(parser.parse_args(["--dataset", dataset, "--depth", "20", "--ordering", ordering, *sys.argv[5:]]))
    cfg = RunConfig.from_dict({k: v for k, v in args.items() if k in fields and v is not None})
    p = Path(cache) / "runs" / cfg.key / "result.json"
    print(p.read_text().replace("\n", "") if p.exists() else json.dumps({"key": cfg.key, "ordering": ordering, "status": "unfinished"}))
    try:
        r = checkpoint_error(cfg, split="train", images=int(images), device=device, cache_dir=cache)
    except Exception as e:  # no checkpoint yet: say so, and still check the other run
        r = {"key": cfg.key, "error": None, "problem": f"{type(e).__name__}: {e}"}
    print(json.dumps({"train_eval": {**r, "ordering": ordering}}))
    print(f"{ordering}: eval-mode error on {r.get('images')} training images at iteration "
          f"{r.get('iteration')}: {r.get('error')} {r.get('problem', '')}", file=sys.stderr)
EOF
fi
if [[ -n "${equiv_pid:-}" ]]; then
  wait "$equiv_pid"
  rc=$?
  cat "$OUT/equiv.tmp" >>"$OUT/log.txt"
  ((rc == 0)) || log "equivalence checks ended with exit status $rc (124: cut by their 200 s timeout)"
  rm -f "$OUT/equiv.tmp"
fi

# 3. Benches, only with the time that is left.
#    The headline: ResNet-110, this trainer (CUDA graph, fp32) vs the conventional pipeline.
want bench && bench resnet110 60 --depth 110 --steps 200 --rounds 2
#    Five seeds packed into one grouped network vs one at a time (both this trainer).
want packed && bench resnet110-packed5 60 --depth 110 --steps 60 --rounds 2 --packs 5 --skip-conventional
#    More points: ResNet-20; bf16; eager launches (what the graph saves); 5 packed ResNet-20.
if want extra; then
  bench resnet20 200 --depth 20 --steps 300 --rounds 2
  bench resnet110-bf16 200 --depth 110 --precision bf16 --steps 200 --rounds 2 --skip-conventional
  bench resnet110-eager 200 --depth 110 --mode eager --steps 100 --rounds 2 --skip-conventional
  bench resnet20-packed5 200 --depth 20 --packs 5 --steps 100 --rounds 2 --skip-conventional
fi

#    If time is left: torch.compile (Inductor) inside the captured iteration, ResNet-110.
want compile && bench resnet110-compile-graph 240 --depth 110 --mode compile+graph --steps 200 --rounds 2 \
  --skip-conventional --warmup-steps 5
log "done; $(left) s of the budget left"
