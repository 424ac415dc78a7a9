#!/usr/bin/env bash
# Trains the built-in Fashion-MNIST victim (builtin:fmnist) and puts it in models/zoo:
# SimCLR ResNet-18, ImageNet stem, 32x32, on fmnist train[0:30000), with the owner's
# watermark. About 45 minutes on 2 cores (190 training images/s). See models/zoo/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
run=${RUN:-runs/zoo/fmnist}
z=models/zoo
n=fmnist-resnet18-simclr
"$bin" train --dataset fmnist --limit 30000 --arch resnet18 --stem imagenet --size 32 \
  --loss infonce --temperature 0.2 --crop-min 0.3 --batch-size 256 --epochs 16 --warmup 1 \
  --seed 1 --threads 2 --watermark --resume --out "$run"
"$bin" export --checkpoint "$run" --out "$z/$n.onnx"
cp "$run/watermark.ot" "$z/$n.watermark.ot"
cp "$run/watermark.ot.json" "$z/$n.watermark.ot.json"
cp "$run/train.log.jsonl" "$z/$n.train.jsonl"
"$bin" eval --model "$z/$n.onnx" --baselines random,pixels --train-limit 10000 --test-limit 10000 --out "$z/$n.eval.json"
