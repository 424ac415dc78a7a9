#!/usr/bin/env bash
# Trains the built-in label-trained Fashion-MNIST victim (builtin:fmnist-supervised) and puts it
# in models/zoo: a ResNet-18 classifier (ImageNet stem, 32x32, the demo's served shape) trained
# with cross-entropy on the labels of fmnist train[0:30000) - one view per image, whole image
# + horizontal flip (--crop-min 1 --views 1), Adam 1e-3, one warm-up epoch then cosine decay
# over 10 epochs - with the owner's watermark trained jointly. The served output is the pooled
# 512-d representation before the classifier (the seed's supervised victim). About 25 minutes
# on 2 idle cores (AVX2); --resume continues an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
run=${RUN:-runs/zoo/fmnist-supervised}
z=models/zoo
n=fmnist-resnet18-supervised
"$bin" train --dataset fmnist --limit 30000 --arch resnet18 --stem imagenet --size 32 \
  --loss ce --optimizer adam --lr 1e-3 --crop-min 1 --views 1 --batch-size 256 --epochs 10 --warmup 1 \
  --seed 1 --threads 2 --watermark --resume --out "$run"
"$bin" export --checkpoint "$run" --layer representation --out "$z/$n.onnx"
cp "$run/watermark.ot" "$z/$n.watermark.ot"
cp "$run/watermark.ot.json" "$z/$n.watermark.ot.json"
cp "$run/train.log.jsonl" "$z/$n.train.jsonl"
"$bin" eval --model "$z/$n.onnx" --baselines random,pixels --train-limit 10000 --test-limit 10000 --out "$z/$n.eval.json" | tee "$z/$n.eval.txt"
