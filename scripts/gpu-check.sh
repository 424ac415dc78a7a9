#!/usr/bin/env bash
# gpu-check.sh - the first GPU machine measures the CUDA paths in one command.
#
# Needs an NVIDIA GPU, a CUDA libtorch set up with `LIBTORCH=/path/to/libtorch make setup`, and
# ONNX Runtime's CUDA provider libraries (libonnxruntime_providers_shared.so,
# libonnxruntime_providers_cuda.so from an onnxruntime-gpu 1.30 build) beside
# .deps/onnxruntime/libonnxruntime.so. It checks:
#   1. parity: the built-in victim's representations of 512 test images through ONNX Runtime on
#      cpu and on cuda (max |difference|);
#   2. training: one epoch of 2048 images on cpu and on cuda (libtorch), images/s and loss;
#   3. `ssl-onnx bench --device cuda` against --device cpu (inference and the training step,
#      PyTorch beside gotch when Debian's python3-torch sees the GPU);
# and prints a Markdown table. Files in $OUT (default runs/gpu-check). DEVICE=cuda:N picks a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
out=${OUT:-runs/gpu-check}
dev=${DEVICE:-cuda}
mkdir -p "$out"
command -v nvidia-smi >/dev/null && nvidia-smi -L || { echo "gpu-check: no nvidia-smi: this machine has no NVIDIA GPU (or no driver)" >&2; exit 1; }
[ -x "$bin" ] || make build

echo "== 1. ONNX Runtime parity, cpu vs $dev"
for d in cpu "$dev"; do
  "$bin" embed --model builtin:fmnist --split test --limit 512 --device "$d" --out "$out/embed-${d//:/-}.npy" >"$out/embed-${d//:/-}.log" 2>&1 \
    || { cat "$out/embed-${d//:/-}.log" >&2; exit 1; }
done
parity=$(/usr/bin/python3 -c 'import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); print(f"{np.abs(a - b).max():.3g}")' \
  "$out/embed-cpu.npy" "$out/embed-${dev//:/-}.npy")
echo "max |cpu - $dev| = $parity"

echo "== 2. one training epoch (2048 images), cpu vs $dev"
declare -A ips loss
for d in cpu "$dev"; do
  run="$out/train-${d//:/-}"
  rm -rf "$run"
  "$bin" train --dataset fmnist --limit 2048 --arch resnet18 --stem imagenet --size 32 --epochs 1 --batch-size 256 \
    --device "$d" --resume=false --out "$run" >"$run.log" 2>&1 || { cat "$run.log" >&2; exit 1; }
  ips[$d]=$(grep -o '"images_per_s":[0-9.]*' "$run/train.log.jsonl" | tail -n 1 | cut -d: -f2)
  loss[$d]=$(grep -o '"loss":[0-9.]*' "$run/train.log.jsonl" | tail -n 1 | cut -d: -f2)
done

echo "== 3. bench, cpu vs $dev"
for d in cpu "$dev"; do
  "$bin" bench --device "$d" --http=false --train-stem imagenet,cifar --train-batch-size 256 --rounds 1 \
    --out "$out/bench-${d//:/-}.json" >"$out/bench-${d//:/-}.log" 2>&1 || { cat "$out/bench-${d//:/-}.log" >&2; exit 1; }
done

echo
echo "| check | cpu | $dev |"
echo "|---|---|---|"
echo "| ONNX Runtime parity (max abs difference of 512 x 512 representations) | - | $parity |"
printf '| training epoch, images/s | %.0f | %.0f |\n' "${ips[cpu]}" "${ips[$dev]}"
printf '| training epoch, loss | %s | %s |\n' "${loss[cpu]}" "${loss[$dev]}"
/usr/bin/python3 - "$out/bench-cpu.json" "$out/bench-${dev//:/-}.json" <<'PY'
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
def rows(r):
    for i in r.get("inference") or []:
        yield f"inference {i['model']} batch {i['batch']}, images/s", i["images_per_s"]
    for s in r.get("training") or []:
        yield f"training step {s['stem']} (gotch), images/s", s["gotch_images_per_s"]
        if s.get("pytorch_images_per_s"):
            yield f"training step {s['stem']} (PyTorch), images/s", s["pytorch_images_per_s"]
g = dict(rows(gpu))
for name, v in rows(cpu):
    print(f"| {name} | {v:.0f} | {g.get(name, float('nan')):.0f} |")
PY
