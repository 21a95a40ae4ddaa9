#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in local gateway, no key or network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo-out
mkdir -p "$out"
export WANVID_DATA_DIR="$out/journal"  # the demo's tasks stay out of your own journal
log=$(mktemp)
wanvid sandbox --port 0 --queue-seconds 1 --run-seconds 4 >"$log" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do [ -s "$log" ] && break; sleep 0.1; done
url=$(head -n1 "$log")
[ -n "$url" ] || { echo "demo: the sandbox did not start" >&2; exit 1; }
echo "demo: sandbox gateway at $url" >&2
wanvid run examples/cat.png --prompt "the cat walks toward the camera" \
  --base-url "$url" --api-key demo-key -o "$out/cat.mp4" --force
wanvid list --base-url "$url" --api-key demo-key >&2
echo "demo: done — play $out/cat.mp4 (what made it: $out/cat.mp4.json)" >&2
