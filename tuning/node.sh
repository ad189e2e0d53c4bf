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
