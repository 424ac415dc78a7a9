#!/usr/bin/env bash
# Served overhead measured with the load generator off the server's core: for each stem, raw
# ONNX Runtime (1 thread) on core 0, then `ssl-onnx serve --threads 1` on core 0 and
# `ssl-onnx bench --url` (the clients) on core 1. Prints a Markdown table: HTTP images/s
# against raw ONNX Runtime at the same batch (64 single-image clients: against raw batch 64).
# Needs 2 cores and taskset (util-linux); results in $OUT (default runs/pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
out=${OUT:-runs/pinned}
mintime=${MIN_TIME:-5s}
port=${PORT:-8791}
command -v taskset >/dev/null || { echo "bench-pinned: taskset not found (Debian package util-linux)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-pinned: needs 2 cores, this machine has $(nproc)" >&2; exit 1; }
mkdir -p "$out"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; true' EXIT
for stem in imagenet cifar; do
  model="$out/resnet18-$stem.onnx"
  "$bin" export --random-init --arch resnet18 --stem "$stem" --size 32 --out "$model" >/dev/null
  taskset -c 0 "$bin" bench --model "$model" --threads 1 --http=false --train-stem none \
    --batch-size 1,64,256 --min-time "$mintime" --out "$out/raw-$stem.json" >"$out/raw-$stem.log" 2>&1
  db="$out/$stem.db"
  rm -f "$db" "$db-wal" "$db-shm"
  key=$("$bin" keys add --db "$db" --name bench --quota 0 2>/dev/null | grep -o 'sslk_[A-Za-z0-9_-]*' | head -n 1)
  taskset -c 0 "$bin" serve --model "$model" --threads 1 --db "$db" --addr "127.0.0.1:$port" \
    --name bench --max-inflight 64 >"$out/serve-$stem.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  taskset -c 1 "$bin" bench --url "http://127.0.0.1:$port" --api-key "$key" --train-stem none \
    --batch-size 64,256 --batch-clients 1,2 --concurrency 64 --min-time "$mintime" --out "$out/http-$stem.json" >"$out/http-$stem.log" 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true
  server=""
done
python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
print("| stem | pattern | HTTP images/s | raw ONNX Runtime images/s | ratio | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|---|")
for stem in ("imagenet", "cifar"):
    raw = {r["batch"]: r["images_per_s"] for r in json.load(open(f"{out}/raw-{stem}.json"))["inference"]}
    for h in json.load(open(f"{out}/http-{stem}.json"))["http"]:
        b, c = h["images_per_request"], h["concurrency"]
        ref = 64 if b == 1 else b
        what = f"{c} single-image clients" if b == 1 else f"{c} client(s), batch {b}"
        print(f"| {stem} | {what} | {h['images_per_s']:.0f} | {raw[ref]:.0f} (batch {ref}) | {h['images_per_s']/raw[ref]:.2f}x | {h['p50_ms']:.1f} | {h['p99_ms']:.1f} |")
EOF
