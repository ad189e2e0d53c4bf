#!/usr/bin/env bash
# Foreground reads while space reclamation runs: a fresh node gets 10,000
# small objects, then ~5 GB of 1 MiB overwrites (compaction, segment
# deletion and checkpoints follow), then open-loop 4 KiB GETs at 10,000/s.
# Prints the GET summary and the slowest operation of each second.
#
#   tuning/reclaim-stall.sh [BIN] [serve args...]
#   ROUNDS=3 tuning/reclaim-stall.sh /tmp/kaligon-old   # several rounds
#
# tuning/results/2026-11-24-reclaim-stall.md has what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/node.sh
BIN=${1:-target/release/kaligon}; shift || true
PORT=${PORT:-19300}
ROUNDS=${ROUNDS:-1}
node_scratch stall
E=http://127.0.0.1:$PORT
for _ in $(seq "$ROUNDS"); do
    KALIGON_LOG=${KALIGON_LOG:-info} start_fresh_node "$BIN" "$WORK/data" "$PORT" "$WORK/node.log" "$@"
    "$BIN" bench --endpoint "$E" --workload get --size 4KiB --objects 10000 --ops 10 --prefix small/ >/dev/null
    for _ in 1 2 3; do
        "$BIN" bench --endpoint "$E" --workload put --size 1MiB --objects 256 -c 16 -d 4s >/dev/null
    done
    date +%T.%N >"$WORK/t0"; "$BIN" bench --endpoint "$E" --workload get --size 4KiB --objects 10000 --no-preload --prefix small/ \
        --rate 10000 -d 5s -c 16 --json "$WORK/get.json" | grep ' get '
    kill "$NODE"; wait "$NODE" 2>/dev/null || true; NODE=; [ -n "${KEEP_LOG:-}" ] && cp "$WORK/node.log" "$KEEP_LOG" && cat "$WORK/t0" >>"$KEEP_LOG"
    python3 -c "
import json; d = json.load(open('$WORK/get.json'))
print('  slowest per second (ms):', [round(t.get('max_latency_ms', 0)) for t in d['timeline']])"
done
