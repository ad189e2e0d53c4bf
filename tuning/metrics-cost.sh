#!/usr/bin/env bash
# What per-request metrics (and, with ACCESS_LOG=1, the access log) cost:
# BASE (a build without them) against NEW under the same closed-loop 4 KiB
# GET and PUT loads, alternating rounds (kaligon bench --compare), so
# NEW/BASE is a ratio from one machine at one time.
#
#   tuning/metrics-cost.sh BASE_BIN [NEW_BIN]
#   ROUNDS=5 SECS=4 ACCESS_LOG=1 tuning/metrics-cost.sh /tmp/kaligon-base target/release/kaligon
# The access log alone: the same binary twice, the log on the second.
#   ACCESS_LOG=1 tuning/metrics-cost.sh target/release/kaligon target/release/kaligon
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/node.sh
BASE=${1:?usage: tuning/metrics-cost.sh BASE_BIN [NEW_BIN]}
NEW=${2:-target/release/kaligon}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
CONC=${CONC:-16}
node_scratch metrics
start_fresh_node "$BASE" "$WORK/base" 19430 "$WORK/base.log"
BASE_PID=$NODE
extra=()
[ "${ACCESS_LOG:-0}" = 1 ] && extra=(--access-log "$WORK/access.log")
start_fresh_node "$NEW" "$WORK/new" 19431 "$WORK/new.log" "${extra[@]}"
trap 'kill "$BASE_PID" "$NODE" 2>/dev/null; rm -rf "$WORK"' EXIT
bench() { "$NEW" bench --rounds "$ROUNDS" -d "${SECS}s" -c "$CONC" --size 4KiB "$@" | grep -E 'ratio|median' || true; }
echo "== GET 4 KiB: BASE vs NEW ${extra[*]}"
bench --endpoint http://127.0.0.1:19430 --compare http://127.0.0.1:19431 --workload get --objects 2000
echo "== PUT 4 KiB: BASE vs NEW ${extra[*]}"
bench --endpoint http://127.0.0.1:19430 --compare http://127.0.0.1:19431 --workload put --objects 2000
