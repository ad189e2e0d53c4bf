#!/usr/bin/env bash
# Is kaligon bench the bottleneck? Drives the same HTTP null servers with wrk
# and with `kaligon bench --null` in alternating rounds (same connections,
# threads and duration) and records requests/s and the client's own CPU time
# per request (from /proc, user + system) in
# tuning/results/<date>-null-vs-wrk.md.
#
#   tuning/wrk-compare.sh                  # ROUNDS=3, 5 s each, -c 16, 2 threads
#   ROUNDS=5 SECS=10 CONC=64 tuning/wrk-compare.sh
#
# Null servers: nginx answering `return 200` from memory (one worker, so the
# client keeps a core), and the node's own GET /health/live. wrk and nginx
# come from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONC=${CONC:-16}
THREADS=${THREADS:-2}
PORT_NODE=${PORT_NODE:-19100}
PORT_NGINX=${PORT_NGINX:-19101}
OUT=${OUT:-tuning/results/$(date -u +%Y-%m-%d)-null-vs-wrk.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaligon-wrk.XXXXXX")
export PATH=$PATH:/usr/sbin

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx
cargo build --release --quiet
BIN=target/release/kaligon

NODE_PID=
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

export KALIGON_ACCESS_KEY=BENCHACCESSKEY000001 KALIGON_SECRET_KEY=bench-secret-key-not-for-production
"$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT_NODE" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / { return 200 "ok\n"; }
    }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf" -g "user root;"
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT_NODE/health/ready" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$PORT_NGINX/" >/dev/null && break
    sleep 0.1
done

# measure: runs one tool; prints "<requests/s> <client CPU seconds>".
cpu_of() { # pid -> utime+stime in clock ticks, children included
    awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"
}
measure() { # tool, url
    local tool=$1 url=$2 out=$WORK/out
    if [ "$tool" = wrk ]; then
        wrk -t "$THREADS" -c "$CONC" -d "${SECS}s" "$url" >"$out" 2>&1 &
    else
        local authority=${url#http://}
        authority=${authority%%/*}
        "$BIN" bench --null --endpoint "http://$authority" --path "/${url#http://*/}" -t "$THREADS" -c "$CONC" \
            -d "${SECS}s" --json "$WORK/bench.json" >"$out" 2>&1 &
    fi
    local pid=$! ticks=0 t
    # Sample the CPU time until the client exits (the last sample before exit counts).
    while kill -0 "$pid" 2>/dev/null; do
        t=$(cpu_of "$pid" 2>/dev/null) && ticks=$t
        sleep 0.05
    done
    wait "$pid"
    local rps
    if [ "$tool" = wrk ]; then
        rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    else
        rps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["ops_per_s"])' "$WORK/bench.json")
    fi
    echo "$rps $(python3 -c "import os,sys; print(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))" "$ticks")"
}

: >"$WORK/rows"
for server in nginx node; do
    case $server in
        nginx) url="http://127.0.0.1:$PORT_NGINX/" ;;
        node) url="http://127.0.0.1:$PORT_NODE/health/live" ;;
    esac
    for r in $(seq "$ROUNDS"); do
        order="wrk kaligon"
        [ $((r % 2)) -eq 0 ] && order="kaligon wrk"
        for tool in $order; do
            read -r rps cpu < <(measure "$tool" "$url")
            echo "$server $tool $r $rps $cpu" | tee -a "$WORK/rows"
        done
    done
done

python3 - "$WORK/rows" "$OUT" "$ROUNDS" "$SECS" "$CONC" "$THREADS" <<'EOF'
import os, platform, statistics, subprocess, sys
rows_file, out, rounds, secs, conc, threads = sys.argv[1:]
rows = [l.split() for l in open(rows_file)]
med = statistics.median
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
wrk_version = (wrk_version.stdout + wrk_version.stderr).split("\n")[0].strip()
table = []
for server, label in [("nginx", "nginx `return 200` (1 worker)"), ("node", "Kaligon node GET /health/live")]:
    figs = {}
    for tool in ["wrk", "kaligon"]:
        mine = [r for r in rows if r[0] == server and r[1] == tool]
        rps = [float(r[3]) for r in mine]
        per_cpu = [float(r[3]) * float(secs) / max(float(r[4]), 1e-9) for r in mine]
        figs[tool] = (med(rps), rps, med(per_cpu))
    for tool, name in [("wrk", "wrk"), ("kaligon", "kaligon bench --null")]:
        m, rps, per_cpu = figs[tool]
        table.append(f"| {label} | {name} | {m:,.0f} | {', '.join(f'{v:,.0f}' for v in rps)} | {per_cpu:,.0f} |")
    table.append(f"| {label} | **ratio kaligon/wrk** | **{figs['kaligon'][0] / figs['wrk'][0]:.2f}** | | **{figs['kaligon'][2] / figs['wrk'][2]:.2f}** |")
host = f"{platform.node()}, {os.cpu_count()} cores, {platform.release()}"
with open(out, "w") as f:
    f.write(f"""# kaligon bench --null against wrk

- commit: `{commit}`; {wrk_version}
- host: {host} (client, server and the other tool's idle process share the cores)
- command: `ROUNDS={rounds} SECS={secs} CONC={conc} THREADS={threads} tuning/wrk-compare.sh`: for each
  server, {rounds} rounds alternating the order (wrk first, then kaligon first, ...), each tool
  `-t {threads} -c {conc} -d {secs}s` on one keep-alive connection per slot, GET of a tiny body.
- client CPU = user + system time of the load tool's process (from /proc), so "requests per
  client CPU-second" shows how much work each tool spends per request, independent of which
  side the machine's cores were saturated on.

| server | tool | median req/s | rounds | req per client CPU-s |
|---|---|---|---|---|
""" + "\n".join(table) + "\n")
print(open(out).read())
EOF
