#!/usr/bin/env bash
# The GPU check of the fast trainer: ONE prepared script for a session that has a GPU machine.
# About 9-10 minutes on one H100 (torch 2.11; needs torch, torchvision, pillow; no streamlit,
# plotly or diskcache). Everything raw goes to $OUT (at most 8 files, for the device tool):
#
#   log.txt                   environment, every step's progress, the human-readable bench reports
#   equivalence.json          graph == eager, packed == standalone, bf16/dropout/ragged smoke, on GPU
#   bench.jsonl               one JSON line per `python -m trainers bench` (ResNet-110 ours vs
#                             conventional; 5 packed seeds vs one at a time; ResNet-20; bf16; ...)
#   fidelity_<ordering>.log   ResNet-20 paper schedule (64k iterations) on the CIFAR-10 JPEG copy
#   fidelity.jsonl            those runs' result.json (test error, curve, provenance)
#
# Usage, from the repository root on the device machine:
#   bash scripts/gpu_check.sh [path/to/cifar10-jpeg.tar.gz]
# The tarball is looked for at $1, $CIFAR_TARBALL, shared/data/, cache/, ../shared/data/. To send
# it with the working tree, copy ../shared/data/cifar10-jpeg.tar.gz to cache/ (git-ignored) and
# name "cache/cifar10-jpeg.tar.gz" in the device tool's `carry`.
# STEPS="equiv bench packed extra fidelity compile" picks steps; BUDGET_S (default 560) is the
# wall-clock budget: steps that would not fit are skipped, the fidelity runs are cut at the budget
# (their logs keep the curve so far; rerun on a warm machine and they resume from checkpoints,
# kept under cache/gpu_check).
# Dry run of the script's flow on a CPU (tiny sizes, figures meaningless):
#   DEVICE=cpu BENCH_EXTRA="--depth 8 --batch-size 16 --steps 2 --rounds 1 --train-images 256" \
#   TRAIN_EXTRA="--depth 8 --iterations 10 --train-size 512 --test-size 256" STEPS="bench fidelity" \
#   PYTHON=.venv/bin/python bash scripts/gpu_check.sh

set -u
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-560}
STEPS=${STEPS:-"equiv bench packed extra fidelity compile"}
CACHE=${GPU_CHECK_CACHE:-cache/gpu_check}
DEVICE=${DEVICE:-cuda}
BENCH_EXTRA=${BENCH_EXTRA:-}  # appended to every bench command (argparse: the last flag wins)
TRAIN_EXTRA=${TRAIN_EXTRA:-}  # appended to the fidelity runs' train commands
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
if [[ -n "$TARBALL" ]] && want fidelity; then
  log "decoding $TARBALL into $CACHE"
  "$PY" -c "from trainers.engine.data import load_dataset; d = load_dataset('folder:$TARBALL', '$CACHE'); \
print(d.label, tuple(d.train_x.shape), tuple(d.test_x.shape))" 2>&1 | tee -a "$OUT/log.txt"
fi

# 1. Correctness on the GPU: the captured iteration is the eager iteration; a packed seed is its
#    standalone run; bf16, the dropout shortcut (RNG inside a graph) and a second batch shape work.
if want equiv; then
  log "equivalence checks"
  timeout 150 "$PY" - "$OUT/equivalence.json" <<'EOF' 2>&1 | tee -a "$OUT/log.txt"
import json, math, sys, time
import torch
from trainers.engine import fast
from trainers.engine.augment import BatchSampler
from trainers.engine.bench import synthetic_cifar
from trainers.core.config import RunConfig
from trainers.engine.model import build_model
from trainers.engine.packing import pack_state_dicts, unpack_state_dict

# Tight comparisons: no TF32 in this process (the benches keep PyTorch's defaults).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
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
                          channels_last=True, packs=len(seeds), mode=mode)
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


cfg = RunConfig(depth=20)


def graph_vs_eager():
    e, le, _, te = run(cfg, "eager", 30)
    g, lg, st, tg = run(cfg, "graph", 30)
    return {"max_abs_param_diff": maxdiff(e[0], g[0]), "loss_eager": le, "loss_graph": lg,
            "graphs": len(st._graphs), "eager_s": te, "graph_s": tg}


def packed_vs_alone():
    p, lp, _, _ = run(cfg, "graph", 20, seeds=(0, 1, 2))
    alone = [run(cfg, "graph", 20, seeds=(s,)) for s in (0, 1, 2)]
    return {"max_abs_param_diff": [maxdiff(a[0][0], q) for a, q in zip(alone, p)],
            "loss_packed": lp, "loss_alone": [a[1][0] for a in alone]}


def bf16_graph():
    _, l, st, _ = run(cfg.replace(precision="bf16"), "graph", 20)
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graphs": len(st._graphs)}


def dropout_graph():
    _, l, st, _ = run(cfg.replace(shortcut="dropout"), "graph", 20)
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graphs": len(st._graphs)}


def ragged_graph():
    _, l, st, _ = run(cfg, "graph", 24, batches=[128, 128, 100])
    return {"loss": l, "finite": all(map(math.isfinite, l)), "graph_shapes": [list(s) for s in st._graphs]}


for name, fn in [("graph_vs_eager", graph_vs_eager), ("packed_vs_alone", packed_vs_alone),
                 ("bf16_graph", bf16_graph), ("dropout_graph", dropout_graph), ("ragged_graph", ragged_graph)]:
    check(name, fn)
json.dump(out, open(sys.argv[1], "w"), indent=1)
EOF
fi

# 2. The headline: ResNet-110, this trainer (CUDA graph, fp32) vs the conventional pipeline.
want bench && bench resnet110 60 --depth 110 --steps 200 --rounds 2
# 3. Five seeds packed into one grouped network vs one at a time (both this trainer).
want packed && bench resnet110-packed5 60 --depth 110 --steps 60 --rounds 2 --packs 5 --skip-conventional
# 4. More points: ResNet-20; bf16; eager launches (what the graph saves); 5 packed ResNet-20.
if want extra; then
  bench resnet20 200 --depth 20 --steps 300 --rounds 2
  bench resnet110-bf16 200 --depth 110 --precision bf16 --steps 200 --rounds 2 --skip-conventional
  bench resnet110-eager 200 --depth 110 --mode eager --steps 100 --rounds 2 --skip-conventional
  bench resnet20-packed5 200 --depth 20 --packs 5 --steps 100 --rounds 2 --skip-conventional
fi

# 5. Fidelity: ResNet-20 original and full pre-activation, the paper's schedule (64k iterations,
#    batch 128, lr 0.1 with warm-up, /10 at 32k and 48k), on the JPEG copy of CIFAR-10, in
#    parallel (two processes share the GPU). Reference: the first ResNet paper's ResNet-20, 8.75%
#    on the official CIFAR-10 (JPEG round-tripped images are not the same data).
if want fidelity; then
  if [[ -z "$TARBALL" ]]; then
    log "skip fidelity: no cifar10-jpeg.tar.gz found"
  elif (($(left) < 120)); then
    log "skip fidelity: $(left) s left"
  else
    limit=$(($(left) - 15))
    log "fidelity runs (cut after ${limit}s)"
    pids=()
    for ordering in original full_preact; do
      timeout "$limit" "$PY" -m trainers train --dataset "folder:$TARBALL" --depth 20 --ordering "$ordering" \
        --device "$DEVICE" --cache-dir "$CACHE" --checkpoint-every-s 30 $TRAIN_EXTRA \
        >"$OUT/fidelity_$ordering.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    for ordering in original full_preact; do
      tail -n 3 "$OUT/fidelity_$ordering.log" | tee -a "$OUT/log.txt"
    done
    "$PY" - "$CACHE" "$TARBALL" >>"$OUT/fidelity.jsonl" <<'EOF'
import json, sys
from pathlib import Path
from trainers.core.config import RunConfig
for ordering in ("original", "full_preact"):
    cfg = RunConfig(dataset=f"folder:{sys.argv[2]}", depth=20, ordering=ordering)
    p = Path(sys.argv[1]) / "runs" / cfg.key / "result.json"
    print(p.read_text().replace("\n", "") if p.exists() else json.dumps({"key": cfg.key, "ordering": ordering, "status": "unfinished"}))
EOF
  fi
fi

# 6. If time is left: torch.compile (Inductor) inside the captured iteration, ResNet-110.
want compile && bench resnet110-compile-graph 240 --depth 110 --mode compile+graph --steps 200 --rounds 2 \
  --skip-conventional --warmup-steps 5
log "done; $(left) s of the budget left"
