#!/usr/bin/env bash
# What the access log costs the hot path: the same binary twice, OFF (no
# access log) and ON (--access-log to a file), under the same closed-loop
# 4 KiB GET and PUT loads in alternating rounds (kaligon bench --compare),
# so ON/OFF is a ratio from one noisy machine at one time.
#
#   tuning/access-log-cost.sh [BIN]
#   ROUNDS=5 SECS=5 tuning/access-log-cost.sh target/release/kaligon
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/node.sh
BIN=${1:-target/release/kaligon}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CONC=${CONC:-16}
node_scratch access-log
start_fresh_node "$BIN" "$WORK/off" 19420 "$WORK/off.log"
OFF_PID=$NODE
start_fresh_node "$BIN" "$WORK/on" 19421 "$WORK/on.log" --access-log "$WORK/access.log"
trap 'kill "$OFF_PID" "$NODE" 2>/dev/null; rm -rf "$WORK"' EXIT
bench() { "$BIN" bench --rounds "$ROUNDS" -d "${SECS}s" -c "$CONC" --size 4KiB "$@" | grep -E 'ratio|median| get | put ' || true; }
echo "== GET 4 KiB: OFF vs ON"
bench --endpoint http://127.0.0.1:19420 --compare http://127.0.0.1:19421 --workload get --objects 2000
echo "== PUT 4 KiB: OFF vs ON"
bench --endpoint http://127.0.0.1:19420 --compare http://127.0.0.1:19421 --workload put --objects 2000
echo "access log: $(wc -l < "$WORK/access.log") lines, $(grep -c dropped_lines "$WORK/access.log" || true) drop notices"
