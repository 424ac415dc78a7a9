#!/usr/bin/env bash
# The paper's table on Fashion-MNIST: steal the built-in victim (SimCLR ResNet-18 trained on
# train[0:30000)) with several losses at several budgets, queries from train[30000:), then
# evaluate everything on the test split next to the victim, random-init and raw pixels.
#
#   scripts/steal_table.sh [--seeds N] [out-dir]   (LOSSES, BUDGETS, STEPS, VICTIM override the defaults)
#
# Each steal trains on about STEPS image presentations (epochs = STEPS / images, at least 5),
# so small budgets are not also starved of training. Finished steals are skipped on a rerun.
# --seeds N steals every cell N times (seeds 1..N: the stolen model's initialisation and
# training order) and reports each cell's mean and spread over seeds next to the single runs.
# When the victim has an owner's watermark secret (SECRET, default: the built-in victim's), every
# copy is checked for it and each cell reports in how many of its seeds the watermark was found.
set -euo pipefail
seeds=1
if [ "${1:-}" = --seeds ]; then
  seeds=${2:?--seeds needs a number}
  shift 2
fi
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "steal_table: --seeds $seeds: expected a positive integer" >&2; exit 2; }
out=${1:-runs/table}
bin=${BIN:-bin/ssl-onnx}
victim=${VICTIM:-builtin:fmnist}
read -r -a losses <<< "${LOSSES:-mse infonce softnn wasserstein}"
read -r -a budgets <<< "${BUDGETS:-1000 3000 6000}"
steps=${STEPS:-30000}
secret=${SECRET-}
[ -z "$secret" ] && [[ "$victim" == builtin:* ]] && secret=$victim
mkdir -p "$out"
models=()
for loss in "${losses[@]}"; do
  for b in "${budgets[@]}"; do
    for seed in $(seq "$seeds"); do
      d="$out/$loss-$b"
      [ "$seed" -gt 1 ] && d="$d-seed$seed"
      models+=(--model "$d/model.onnx")
      if [ -f "$d/model.onnx" ]; then
        if [ -n "$secret" ] && [ ! -f "$d/watermark.json" ]; then
          "$bin" watermark verify --secret "$secret" --model "$d/model.onnx" --out "$d/watermark.json" > /dev/null
        fi
        continue
      fi
      epochs=$(( steps / b )); [ "$epochs" -lt 5 ] && epochs=5
      start=$(date +%s)
      "$bin" steal --victim "$victim" --query-offset 30000 --num-queries "$b" --loss "$loss" \
        --stem imagenet --epochs "$epochs" --seed "$seed" --out "$d" 2> "$d.log"
      "$bin" export --checkpoint "$d" > /dev/null
      if [ -n "$secret" ]; then
        "$bin" watermark verify --secret "$secret" --model "$d/model.onnx" --out "$d/watermark.json" > /dev/null
      fi
      echo "$loss $b seed $seed: $epochs epochs, $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
    done
  done
done
"$bin" eval --reference "$victim" "${models[@]}" --baselines random,pixels \
  --train-limit 10000 --test-limit 10000 --out "$out/eval.json" --plot "$out/probe.png"
# Mean and spread over seeds per cell (sample standard deviation; a cell of one seed has none).
python3 - "$out/eval.json" "$out" <<'EOF2'
import json, os, re, statistics, sys
rows = json.load(open(sys.argv[1]))["rows"]
cells = {}
for r in rows:
    m = re.fullmatch(r"(.+?-\d+)(?:-seed\d+)?", r["name"])
    if r["kind"] != "model" or r.get("fidelity_cos") is None or not m:
        continue
    cells.setdefault(m.group(1), []).append(r)
def watermark(rs):
    # In how many of the cell's copies the owner's watermark was found (one-sided t-test at alpha).
    found = []
    for r in rs:
        p = os.path.join(os.path.dirname(r["model"]), "watermark.json")
        if os.path.exists(p):
            found.append(json.load(open(p))["watermark_present"])
    return f"{sum(found)} of {len(found)}" if found else "n/a"
print("| cell | seeds | probe top-1 mean +- sd | fidelity (cos) mean +- sd | kNN top-1 mean +- sd | watermark found |")
print("|---|---|---|---|---|---|")
for cell, rs in cells.items():
    def ms(key, scale=100):
        v = [r[key] * scale for r in rs]
        return f"{statistics.mean(v):.2f} +- {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"
    print(f"| {cell} | {len(rs)} | {ms('probe_top1')}% | {ms('fidelity_cos', 1)} | {ms('knn_top1')}% | {watermark(rs)} |")
EOF2
