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
# A small batch: three takes of the same image with different seeds, two at a time; then the same
# batch again, which pays for nothing: the journal knows every row is saved.
printf 'image,prompt,seed\n../examples/cat.png,the cat looks left,1\n../examples/cat.png,the cat looks right,2\n../examples/cat.png,the cat yawns,3\n' \
  >"$out/takes.csv"
wanvid batch "$out/takes.csv" --base-url "$url" --api-key demo-key -d "$out/takes" --name "cat-{seed}.mp4" \
  --concurrency 2 --stagger 0.2 --poll-interval 1 --force >&2
echo "demo: the same batch again" >&2
wanvid batch "$out/takes.csv" --base-url "$url" --api-key demo-key -d "$out/takes" --name "cat-{seed}.mp4" -q >/dev/null
wanvid list --base-url "$url" >&2
echo "demo: done — play $out/cat.mp4 (what made it: $out/cat.mp4.json) and $out/takes/cat-*.mp4" >&2
