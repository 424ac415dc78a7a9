#!/usr/bin/env bash
# Gateway overhead: an upstream `ssl-onnx serve` (standing in for Triton) and a gateway
# `ssl-onnx serve --model <upstream URL>` in front of it, both on loopback; `bench --url`
# measures the upstream directly and through the gateway, over the raw float32 protocol
# (/v1/embeddings) and over Open Inference Protocol v2 JSON (what Triton speaks). Prints a
# Markdown table; results in $OUT (default runs/gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
out=${OUT:-runs/gateway}
mintime=${MIN_TIME:-5s}
up=${PORT:-8811}
mkdir -p "$out"
rm -f "$out"/*.db "$out"/*.db-wal "$out"/*.db-shm
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; true' EXIT
key() { "$bin" keys add --db "$1" --name "$2" --quota 0 2>/dev/null | grep -o 'sslk_[A-Za-z0-9_-]*' | head -n 1; }
wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }

"$bin" export --random-init --arch resnet18 --stem imagenet --size 32 --out "$out/encoder.onnx" >/dev/null
"$bin" serve --model "$out/encoder.onnx" --db "$out/upstream.db" --addr "127.0.0.1:$up" >"$out/upstream.log" 2>&1 &
pids+=($!)
wait_up "$up"
# Two gateways: one speaking v1 raw to the upstream, one v2 JSON (as it would to Triton).
for proto in v1 v2; do
  port=$((up + ${#pids[@]}))
  url="http://127.0.0.1:$up"
  [ "$proto" = v2 ] && url="$url/v2/models/encoder"
  SSL_ONNX_UPSTREAM_KEY=$(key "$out/upstream.db" "gateway-$proto") \
    "$bin" serve --model "$url" --name encoder --db "$out/gateway-$proto.db" --addr "127.0.0.1:$port" >"$out/gateway-$proto.log" 2>&1 &
  pids+=($!)
  wait_up "$port"
done
run() { # name url key
  "$bin" bench --url "$2" --api-key "$3" --train-stem none --batch-size 64 --batch-clients 1,2 --concurrency 16 \
    --min-time "$mintime" --out "$out/$1.json" >"$out/$1.log" 2>&1
}
run direct-v1 "http://127.0.0.1:$up" "$(key "$out/upstream.db" direct-v1)"
run gateway-v1 "http://127.0.0.1:$((up + 1))" "$(key "$out/gateway-v1.db" bench)"
run direct-v2 "http://127.0.0.1:$up/v2/models/encoder" "$(key "$out/upstream.db" direct-v2)"
run gateway-v2 "http://127.0.0.1:$((up + 2))/v2/models/encoder" "$(key "$out/gateway-v2.db" bench)"
python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
print("| protocol | pattern | direct images/s (p50 ms) | through the gateway images/s (p50 ms) | gateway/direct |")
print("|---|---|---|---|---|")
for proto, label in (("v1", "v1 raw float32"), ("v2", "v2 JSON")):
    d = json.load(open(f"{out}/direct-{proto}.json"))["http"]
    g = json.load(open(f"{out}/gateway-{proto}.json"))["http"]
    for a, b in zip(d, g):
        what = f"{a['concurrency']} single-image clients" if a["images_per_request"] == 1 else f"{a['concurrency']} client(s), batch {a['images_per_request']}"
        print(f"| {label} | {what} | {a['images_per_s']:.0f} ({a['p50_ms']:.1f}) | {b['images_per_s']:.0f} ({b['p50_ms']:.1f}) | {b['images_per_s']/a['images_per_s']:.2f}x |")
EOF
