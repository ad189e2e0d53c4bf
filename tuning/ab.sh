#!/usr/bin/env bash
# A/B of two kaligon binaries on one load, alternating rounds (A B A B ...)
# so that the machine's drift hits both alike. Each round starts a fresh
# node, runs `kaligon bench` against it with the given arguments and prints
# one line: binary, the bench's headline figures and the node's CPU seconds.
#
#   tuning/ab.sh /tmp/kaligon-old target/release/kaligon -- \
#       --workload put --size 1MiB --objects 256 -c 16 -d 5s
#   ROUNDS=5 tuning/ab.sh A B -- ...
#
# The load generator is always binary B's `kaligon bench`, so only the
# node differs between rounds.
set -euo pipefail
. "$(dirname "$0")/node.sh"
A=$1 B=$2; shift 2
[ "${1:-}" = "--" ] && shift
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-19100}
node_scratch ab

round() { # label, binary, bench args...
    local label=$1 bin=$2; shift 2
    start_fresh_node "$bin" "$WORK/data" "$PORT" "$WORK/node.log"
    local t0
    t0=$(awk '{print $14+$15}' "/proc/$NODE/stat")
    "$B" bench --endpoint "http://127.0.0.1:$PORT" "$@" --json "$WORK/out.json" >/dev/null
    local t1
    t1=$(awk '{print $14+$15}' "/proc/$NODE/stat")
    kill "$NODE"; wait "$NODE" 2>/dev/null || true; NODE=
    python3 - "$label" "$WORK/out.json" "$(( t1 - t0 ))" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
label, path, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(path))
t = r["totals"]
ops, mib, p99 = t.get("ops_per_s", 0), t.get("mib_per_s", 0), t.get("latency_ms", {}).get("p99", 0)
cpu = ticks / hz
print(f"{label}  ops/s {ops:10.0f}  MiB/s {mib:8.1f}  p99 ms {p99:7.2f}  node cpu s {cpu:6.2f}  MiB per node cpu-s {mib * r.get('elapsed_s', 0) / max(cpu, 1e-9):7.1f}")
EOF
}

for r in $(seq "$ROUNDS"); do
    round "A $A" "$A" "$@"
    round "B $B" "$B" "$@"
done
