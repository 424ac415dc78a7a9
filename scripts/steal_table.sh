#!/usr/bin/env bash
# The paper's table on Fashion-MNIST: steal the built-in victim (SimCLR ResNet-18 trained on
# train[0:30000)) with several losses at several budgets, queries from train[30000:), then
# evaluate everything on the test split next to the victim, random-init and raw pixels.
#
#   scripts/steal_table.sh [out-dir]        (LOSSES, BUDGETS, STEPS override the defaults)
#
# Each steal trains on about STEPS image presentations (epochs = STEPS / images, at least 5),
# so small budgets are not also starved of training. Finished steals are skipped on a rerun.
set -euo pipefail
out=${1:-runs/table}
bin=${BIN:-bin/ssl-onnx}
victim=${VICTIM:-builtin:fmnist}
read -r -a losses <<< "${LOSSES:-mse infonce softnn wasserstein}"
read -r -a budgets <<< "${BUDGETS:-1000 3000 6000}"
steps=${STEPS:-30000}
mkdir -p "$out"
models=()
for loss in "${losses[@]}"; do
  for b in "${budgets[@]}"; do
    d="$out/$loss-$b"
    models+=(--model "$d/model.onnx")
    [ -f "$d/model.onnx" ] && continue
    epochs=$(( steps / b )); [ "$epochs" -lt 5 ] && epochs=5
    start=$(date +%s)
    "$bin" steal --victim "$victim" --query-offset 30000 --num-queries "$b" --loss "$loss" \
      --stem imagenet --epochs "$epochs" --out "$d" 2> "$d.log"
    "$bin" export --checkpoint "$d" > /dev/null
    echo "$loss $b: $epochs epochs, $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
  done
done
"$bin" eval --reference "$victim" "${models[@]}" --baselines random,pixels \
  --train-limit 10000 --test-limit 10000 --out "$out/eval.json" --plot "$out/probe.png"
