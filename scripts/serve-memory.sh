#!/usr/bin/env bash
# serve-memory.sh - resident memory of `ssl-onnx serve` before, at the peak of, and after a
# load burst on loopback (64 single-image clients and 256-image batches from `ssl-onnx bench
# --url`), read from /proc: the server runs with glibc's default allocator (the training
# processes' tuning is not applied to it), so memory freed after the burst goes back.
# Prints one Markdown row; files in $OUT (default runs/serve-memory).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
out=${OUT:-runs/serve-memory}
port=${PORT:-8795}
mkdir -p "$out"
model="$out/resnet18-imagenet.onnx"
"$bin" export --random-init --arch resnet18 --stem imagenet --size 32 --out "$model" >/dev/null
db="$out/api.db"
rm -f "$db" "$db-wal" "$db-shm"
key=$("$bin" keys add --db "$db" --name burst --quota 0 2>/dev/null | grep -o 'sslk_[A-Za-z0-9_-]*' | head -n 1)
"$bin" serve --model "$model" --db "$db" --addr "127.0.0.1:$port" --name burst --max-inflight 64 >"$out/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; true' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$server/status"; }
before=$(rss)
"$bin" bench --url "http://127.0.0.1:$port" --api-key "$key" --train-stem none --batch-size 256 --batch-clients 2 \
  --concurrency 64 --min-time "${MIN_TIME:-5s}" --out "$out/bench.json" >"$out/bench.log" 2>&1
peak=$(awk '/^VmHWM/ {print int($2/1024)}' "/proc/$server/status")
sleep "${SETTLE:-10}"
after=$(rss)
tuned=$(grep -o 'training_allocator=[a-z]*' "$out/serve.log" | head -n 1 | cut -d= -f2 || true)
echo "| serve RSS before | peak | ${SETTLE:-10} s after the burst | training allocator tuning |"
echo "|---|---|---|---|"
echo "| $before MB | $peak MB | $after MB | ${tuned:-unknown} |"
