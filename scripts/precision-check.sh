#!/usr/bin/env bash
# Does bf16 training (--precision bf16, autocast) learn as well as fp32? Same recipes, same seeds,
# both precisions: a short label-trained victim (the builtin:fmnist-supervised recipe cut to
# EPOCHS epochs, without the watermark) and an mse steal of builtin:fmnist-supervised at 2000
# queries (the demo's), each with SEEDS seeds; then one eval per kind (probe on 10000 train /
# 10000 test images with 95% intervals; the steals with fidelity and McNemar against the victim)
# and a table of training speed and probe per precision. Outputs in runs/precision (or $1).
# About 9 minutes on 2 cores with AVX512-BF16 (measured); a CPU without it refuses bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
out=${1:-runs/precision}
epochs=${EPOCHS:-2}
read -r -a seeds <<< "${SEEDS:-1 2}"
victim=builtin:fmnist-supervised
mkdir -p "$out"
victims=() steals=()
for prec in fp32 bf16; do
  for seed in "${seeds[@]}"; do
    v="$out/victim-$prec-seed$seed" s="$out/steal-$prec-seed$seed"
    if [ ! -f "$v/model.onnx" ]; then
      "$bin" train --dataset fmnist --limit 30000 --arch resnet18 --stem imagenet --size 32 \
        --loss ce --optimizer adam --lr 1e-3 --crop-min 1 --views 1 --batch-size 256 --epochs "$epochs" --warmup 1 \
        --seed "$seed" --threads 2 --precision "$prec" --resume=false --out "$v" 2> "$v.log" > /dev/null
      "$bin" export --checkpoint "$v" --layer representation --out "$v/model.onnx" > /dev/null
    fi
    if [ ! -f "$s/model.onnx" ]; then
      "$bin" steal --victim "$victim" --query-offset 30000 --num-queries 2000 --loss mse --stem imagenet \
        --epochs 5 --seed "$seed" --precision "$prec" --resume=false --out "$s" 2> "$s.log" > /dev/null
      "$bin" export --checkpoint "$s" > /dev/null
    fi
    victims+=(--model "$v/model.onnx") steals+=(--model "$s/model.onnx")
  done
done
"$bin" eval "${victims[@]}" --train-limit 10000 --test-limit 10000 --out "$out/victims.json" > "$out/victims.txt"
"$bin" eval --reference "$victim" "${steals[@]}" --train-limit 10000 --test-limit 10000 --out "$out/steals.json" > "$out/steals.txt"
python3 - "$out" <<'PY'
import json, os, re, statistics, sys
out = sys.argv[1]
def speed(run):  # training images/s, the mean over epochs (train's log, or steal's progress lines)
    log = os.path.join(run, "train.log.jsonl")
    if os.path.exists(log):
        v = [json.loads(l).get("images_per_s") or 0 for l in open(log) if l.strip()]
    else:
        v = [float(x) for x in re.findall(r"loss [0-9.]+, ([0-9.]+) img/s", open(run + ".log").read())]
    return statistics.mean(v) if v else float("nan")
print("| run | precision | seed | training images/s | probe top-1 [95% CI] | fidelity (cos) |")
print("|---|---|---|---|---|---|")
for kind in ("victims", "steals"):
    for r in json.load(open(os.path.join(out, kind + ".json")))["rows"]:
        m = re.search(r"(victim|steal)-(fp32|bf16)-seed(\d+)", r.get("model") or "")
        if r["kind"] != "model" or not m:
            continue
        run = os.path.dirname(r["model"])
        lo, hi = r["probe_top1_ci95"]
        fid = r.get("fidelity_cos")
        print(f"| {m.group(1)} | {m.group(2)} | {m.group(3)} | {speed(run):.0f} | "
              f"{100*r['probe_top1']:.2f} [{100*lo:.1f}, {100*hi:.1f}] | " + (f"{fid:.3f} |" if fid is not None else "- |"))
PY
