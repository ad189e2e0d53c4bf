# Sourced by the tuning scripts: start a fresh node and wait until it is
# ready. Sets NODE to its pid.
#
#   start_fresh_node BIN DATA_DIR PORT LOG [serve args...]
start_fresh_node() {
    local bin=$1 data=$2 port=$3 log=$4; shift 4
    rm -rf "$data"
    "$bin" serve --data "$data" --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
    NODE=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "node did not become ready" >&2; cat "$log" >&2; exit 1
}

# The scripts' common set-up: the bench credentials, memlock, a scratch
# directory in WORK, and a trap that stops the node in NODE and removes WORK.
#
#   node_scratch NAME
node_scratch() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaligon-$1.XXXXXX")
    export KALIGON_ACCESS_KEY=BENCHACCESSKEY000001 KALIGON_SECRET_KEY=bench-secret-key-not-for-production
    ulimit -l unlimited 2>/dev/null || true
    NODE=
    trap '[ -n "$NODE" ] && kill "$NODE" 2>/dev/null; rm -rf "$WORK"' EXIT
}
