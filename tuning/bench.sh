#!/usr/bin/env bash
# The standard performance set: disk limits from fio (O_DIRECT), the HTTP
# loopback limit (kaligon bench --null against /health/live), and S3 loads
# against a fresh node; medians of REPS runs each, written with commit,
# host and commands to tuning/results/<date>-standard-set.md.
#
#   tuning/bench.sh                 # REPS=3, 5 s per run
#   REPS=5 SECS=10 tuning/bench.sh
#   DATA=/mnt/nvme0/kaligon tuning/bench.sh   # measure that drive
#
# Needs fio (installed from apt if missing) and python3. The wrk comparison
# of the null figure is tuning/wrk-compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
SECS=${SECS:-5}
CONC=${CONC:-16}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaligon-bench.XXXXXX")
DATA=${DATA:-$WORK/data}
OUT=${OUT:-tuning/results/$(date -u +%Y-%m-%d)-standard-set.md}
# Never over an earlier record of the same day.
[ -e "$OUT" ] && OUT=${OUT%.md}-$(date -u +%H%M).md
PORT=${PORT:-19000}
ulimit -l unlimited 2>/dev/null || true

command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
cargo build --release --quiet
BIN=target/release/kaligon

export KALIGON_ACCESS_KEY=BENCHACCESSKEY000001 KALIGON_SECRET_KEY=bench-secret-key-not-for-production
NODE_PID=
cleanup() { [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$DATA" "$WORK/json"
FIO_FILE=$DATA/fio.test
fio_run() { # name, fio args...
    local name=$1; shift
    for r in $(seq "$REPS"); do
        fio --name="$name" --filename="$FIO_FILE" --direct=1 --ioengine=io_uring --size=1G \
            --runtime="$SECS" --time_based --output-format=json "$@" >"$WORK/json/fio-$name-$r.json"
    done
}
echo "fio: sequential 1 MiB write, read; 4 KiB write+fdatasync QD1"
fio_run write1m --rw=write --bs=1M --iodepth=8
fio_run read1m --rw=read --bs=1M --iodepth=8
fio_run sync4k --rw=randwrite --bs=4k --iodepth=1 --fdatasync=1
rm -f "$FIO_FILE"

. tuning/node.sh
start_node() {
    start_fresh_node "$BIN" "$DATA/node" "$PORT" "$WORK/node.log"
    NODE_PID=$NODE
}
stop_node() { kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=; }

bench_run() { # name, bench args...
    local name=$1; shift
    for r in $(seq "$REPS"); do
        "$BIN" bench --endpoint "http://127.0.0.1:$PORT" -c "${C:-$CONC}" -d "${SECS}s" "$@" \
            --json "$WORK/json/bench-$name-$r.json" >/dev/null
    done
}

start_node
echo "HTTP null: kaligon bench --null GET /health/live"
bench_run null --null --path /health/live
echo "S3 loads"
bench_run put1m --workload put --size 1MiB --objects 256
bench_run put1mu --workload put --size 1MiB --objects 256 --unsigned-payload
bench_run put1mcrc --workload put --size 1MiB --objects 256 --checksum crc64nvme
bench_run get1m --workload get --size 1MiB --objects 256 --verify
C=4 bench_run put64m --workload put --size 64MiB --objects 8
C=4 bench_run get64m --workload get --size 64MiB --objects 8 --verify
C=4 bench_run mp64m --workload multipart --size 64MiB --part-size 8MiB --objects 8
bench_run put4k --workload put --size 4KiB --objects 10000
bench_run get4k --workload get --size 4KiB --objects 10000 --verify
bench_run mixed4k --workload mixed --size 4KiB --objects 10000 --mix get=70,put=30
bench_run open4k --workload get --size 4KiB --objects 10000 --verify --rate "${RATE:-10000}"
stop_node

python3 - "$WORK/json" "$OUT" "$REPS" "$SECS" "$CONC" "$DATA" <<'EOF'
import glob, json, os, platform, statistics, subprocess, sys
d, out, reps, secs, conc, data = sys.argv[1:]
med = statistics.median
def fio(name, field):
    vals = []
    for f in sorted(glob.glob(f"{d}/fio-{name}-*.json")):
        j = json.load(open(f))["jobs"][0]
        side = j["write"] if j["write"]["io_bytes"] else j["read"]
        vals.append(side["bw_bytes"] / 2**20 if field == "mib" else side["iops"])
    return med(vals), vals
def bench(name, field, op="totals"):
    vals, p99 = [], []
    for f in sorted(glob.glob(f"{d}/bench-{name}-*.json")):
        j = json.load(open(f))
        t = j["totals"] if op == "totals" else j["operations"][op]
        vals.append(t[field]); p99.append(t["latency_ms"]["p99"])
        assert j["totals"]["errors"] == 0, f"{name}: errors {j['errors_by_code']}"
    return med(vals), vals, med(p99)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
w1, w1v = fio("write1m", "mib"); r1, r1v = fio("read1m", "mib"); s4, s4v = fio("sync4k", "iops")
rows = []
def row(label, name, field, limit=None, limit_name=""):
    m, vals, p99 = bench(name, field)
    unit = "MiB/s" if field == "mib_per_s" else "ops/s"
    ratio = f"{m / limit:.2f} × {limit_name}" if limit else ""
    rows.append(f"| {label} | {m:,.1f} {unit} | {', '.join(f'{v:,.1f}' for v in vals)} | {p99:.2f} | {ratio} |")
    return m
null = row("HTTP null GET /health/live", "null", "ops_per_s")
row("PUT 1 MiB", "put1m", "mib_per_s", w1, "fio write")
row("PUT 1 MiB, UNSIGNED-PAYLOAD", "put1mu", "mib_per_s", w1, "fio write")
row("PUT 1 MiB, x-amz-checksum-crc64nvme", "put1mcrc", "mib_per_s", w1, "fio write")
row("GET 1 MiB", "get1m", "mib_per_s", r1, "fio read")
row("PUT 64 MiB (-c 4)", "put64m", "mib_per_s", w1, "fio write")
row("GET 64 MiB (-c 4)", "get64m", "mib_per_s", r1, "fio read")
row("multipart upload 64 MiB in 8 MiB parts (-c 4)", "mp64m", "mib_per_s", w1, "fio write")
row("PUT 4 KiB", "put4k", "ops_per_s", null, "null HTTP")
row("GET 4 KiB", "get4k", "ops_per_s", null, "null HTTP")
row("mixed 4 KiB (70 get / 30 put)", "mixed4k", "ops_per_s", null, "null HTTP")
row(f"GET 4 KiB, open loop at {os.environ.get('RATE', '10000')}/s (p99 from schedule)", "open4k", "ops_per_s", null, "null HTTP")
host = f"{platform.node()}, {os.cpu_count()} cores, {platform.release()}"
with open(out, "w") as f:
    f.write(f"""# Standard performance set

- commit: `{commit}`{' (with uncommitted changes)' if dirty else ''}
- host: {host}; data on `{data}`
- command: `REPS={reps} SECS={secs} CONC={conc} tuning/bench.sh` (each figure the median of {reps} runs of {secs} s; node: fresh data directory, default settings, `--durability strict`)

## Limits of this machine

| limit | median | runs |
|---|---|---|
| fio O_DIRECT sequential write, 1 MiB, QD8 | {w1:,.1f} MiB/s | {', '.join(f'{v:,.1f}' for v in w1v)} |
| fio O_DIRECT sequential read, 1 MiB, QD8 | {r1:,.1f} MiB/s | {', '.join(f'{v:,.1f}' for v in r1v)} |
| fio 4 KiB write + fdatasync, QD1 | {s4:,.0f} IOPS | {', '.join(f'{v:,.0f}' for v in s4v)} |

## kaligon bench against the node (concurrency {conc} unless noted)

| load | median | runs | p99 ms | ratio |
|---|---|---|---|---|
""" + "\n".join(rows) + "\n")
print(open(out).read())
EOF
