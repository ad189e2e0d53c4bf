#!/usr/bin/env bash
# The engine's own limits (issue 2's benchmark): `kaligon bench-engine` (no
# HTTP) against fio on the same file system, in alternating rounds, medians
# written with commit, host and commands to
# tuning/results/<date>-engine-io.md.
#
#   tuning/engine-bench.sh                       # REPS=3, 5 s per run
#   DATA=/mnt/nvme0/kaligon tuning/engine-bench.sh
#   BIN=./kaligon SCALING="1 2 4 8 16" tuning/engine-bench.sh   # on a big host
#
# fio runs (skipped where fio is missing, e.g. on the device host):
#   write1m  1 MiB sequential O_DIRECT writes, QD8, over a laid-out 1 GiB file
#            (what tuning/bench.sh calls fio write: mostly overwrites);
#   overdurable1m  write1m with an fdatasync after every 8 writes: the disk's
#            limit for durable writes over blocks written before, which an
#            aged node's PUTs are (on a VM whose host caches the image, the
#            unsynced write1m measures the host's cache, not the disk);
#   fresh1m  the same into a new fallocated file every run: what a log does
#            when it appends to new segments;
#   durable1m  fresh1m with an fdatasync after every 8 writes (8 MiB, about
#            what one group commit covers with 8 PUTs in flight): the disk's
#            limit for durable appends, which the engine's PUTs are;
#   read1m   1 MiB sequential O_DIRECT reads, QD8;
#   sync4k   4 KiB write + fdatasync, QD1.
# Engine 1 MiB PUTs run on a fresh data directory (every segment a new file)
# and --aged (a node that has cycled through its disk: every segment a
# reclaimed file written again, as fio's write1m overwrites its laid-out file),
# the aged node also with 32 PUTs in flight. Ratios are given both as median
# over median and as the median of each round's own ratio (the disk drifts
# between rounds; a round's runs are seconds apart).
# SCALING: also 4 KiB durable PUTs with each of these shard counts (64 in
# flight per shard), reported as a ratio to linear from the first count.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
SECS=${SECS:-5}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaligon-engine-bench.XXXXXX")
DATA=${DATA:-$WORK/data}
OUT=${OUT:-tuning/results/$(date -u +%Y-%m-%d)-engine-io.md}
# Never over an earlier record of the same day.
[ -e "$OUT" ] && OUT=${OUT%.md}-$(date -u +%H%M).md
SCALING=${SCALING:-}
export KALIGON_LOG=${KALIGON_LOG:-warn}
trap 'rm -rf "$WORK" "$DATA/engine" "$DATA/fio.test"' EXIT

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/kaligon
fi
HAVE_FIO=1
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null 2>&1 || HAVE_FIO=0

mkdir -p "$DATA" "$WORK/json"
fio_run() { # name round, fio args...
    local name=$1 r=$2; shift 2
    [ "$HAVE_FIO" = 1 ] || return 0
    fio --name="$name" --filename="$DATA/fio.test" --direct=1 --ioengine=io_uring \
        --runtime="$SECS" --time_based --output-format=json "$@" >"$WORK/json/fio-$name-$r.json"
}
engine_run() { # name round, bench-engine args...
    local name=$1 r=$2; shift 2
    rm -rf "$DATA/engine"
    "$BIN" bench-engine --data "$DATA/engine" -d "${SECS}s" "$@" --json "$WORK/json/engine-$name-$r.json" >/dev/null
}

for r in $(seq "$REPS"); do
    echo "round $r of $REPS"
    fio_run write1m "$r" --size=1G --rw=write --bs=1M --iodepth=8
    engine_run put1m_aged "$r" --size 1MiB -c 8 --aged
    fio_run overdurable1m "$r" --size=1G --rw=write --bs=1M --iodepth=8 --fdatasync=8
    engine_run put1m_aged32 "$r" --size 1MiB -c 32 --aged
    engine_run put1m "$r" --size 1MiB -c 8
    rm -f "$DATA/fio.test"
    fio_run fresh1m "$r" --size=16G --rw=write --bs=1M --iodepth=8 --fallocate=native
    rm -f "$DATA/fio.test"
    fio_run durable1m "$r" --size=16G --rw=write --bs=1M --iodepth=8 --fallocate=native --fdatasync=8
    rm -f "$DATA/fio.test"
    fio_run read1m "$r" --size=1G --rw=read --bs=1M --iodepth=8
    engine_run get1m "$r" --workload get --size 1MiB --objects 1024 -c 8 --verify
    fio_run sync4k "$r" --size=1G --rw=randwrite --bs=4k --iodepth=1 --fdatasync=1
    rm -f "$DATA/fio.test"
    engine_run put4k "$r" --size 4KiB -c 64
    engine_run put4k256 "$r" --size 4KiB -c 256
    for n in $SCALING; do
        engine_run "scale$n" "$r" --size 4KiB --shards "$n" -c $((64 * n))
    done
done

python3 - "$WORK/json" "$OUT" "$REPS" "$SECS" "$DATA" "$SCALING" <<'EOF'
import glob, json, os, platform, statistics, subprocess, sys
d, out, reps, secs, data, scaling = sys.argv[1:]
med = statistics.median
def runs(kind, name):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{d}/{kind}-{name}-*.json"))]
def fio(name, field):
    vals = []
    for j in runs("fio", name):
        j = j["jobs"][0]
        side = j["write"] if j["write"]["io_bytes"] else j["read"]
        vals.append(side["bw_bytes"] / 2**20 if field == "mib" else side["iops"])
    return (med(vals), vals) if vals else (None, [])
def engine(name, field):
    rs = runs("engine", name)
    for j in rs:
        assert j["errors"] == 0, f"{name}: {j['errors']} errors"
    vals = [j[field] for j in rs]
    return med(vals), vals, med(j["latency_ms"]["p99"] for j in rs), rs
fmt = lambda vals, p=1: ", ".join(f"{v:,.{p}f}" for v in vals)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
mounts = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "-T", data], capture_output=True, text=True).stdout.strip()
limits = {k: fio(k, "iops" if k == "sync4k" else "mib") for k in ["write1m", "overdurable1m", "fresh1m", "durable1m", "read1m", "sync4k"]}
lim_rows = [
    ("fio O_DIRECT sequential write, 1 MiB, QD8, laid-out 1 GiB file", "write1m", "MiB/s"),
    ("fio the same with fdatasync every 8 MiB (durable overwrites)", "overdurable1m", "MiB/s"),
    ("fio the same into a new fallocated file", "fresh1m", "MiB/s"),
    ("fio the same with fdatasync every 8 MiB (durable appends)", "durable1m", "MiB/s"),
    ("fio O_DIRECT sequential read, 1 MiB, QD8", "read1m", "MiB/s"),
    ("fio 4 KiB write + fdatasync, QD1", "sync4k", "IOPS"),
]
text = f"""# Engine benchmark: kaligon bench-engine against fio

- commit: `{commit}`{' (with uncommitted changes)' if dirty else ''}
- host: {platform.node()}, {os.cpu_count()} cores, {platform.release()}; data on `{data}` ({mounts})
- command: `REPS={reps} SECS={secs}{f' SCALING="{scaling}"' if scaling else ''} tuning/engine-bench.sh` (fio and the engine alternate within each round; medians of {reps} runs of {secs} s; engine: fresh data directory each run, one shard per core unless noted, `--durability strict`)

## Limits of this machine

| limit | median | runs |
|---|---|---|
"""
for label, k, unit in lim_rows:
    m, vals = limits[k]
    text += f"| {label} | {m:,.1f} {unit} | {fmt(vals)} |\n" if m else f"| {label} | (fio missing) | |\n"
text += """
## kaligon bench-engine

| load | median | runs | p99 ms | CPU-s per run | ratio (median over median; median of per-round ratios) |
|---|---|---|---|---|---|
"""
def per_round(name, field, k):
    e = {f.rsplit("-", 1)[1]: json.load(open(f))[field] for f in glob.glob(f"{d}/engine-{name}-*.json")}
    ratios = []
    for f in glob.glob(f"{d}/fio-{k}-*.json"):
        j = json.load(open(f))["jobs"][0]
        side = j["write"] if j["write"]["io_bytes"] else j["read"]
        lim = side["bw_bytes"] / 2**20 if k != "sync4k" else side["iops"]
        r = f.rsplit("-", 1)[1]
        if r in e and lim:
            ratios.append(e[r] / lim)
    return med(ratios) if ratios else None
def row(label, name, field, *limits_named):
    m, vals, p99, rs = engine(name, field)
    unit = "MiB/s" if field == "mib_per_second" else "ops/s"
    ratio = "; ".join(
        f"{m / limits[k][0]:.2f} ({per_round(name, field, k):.2f}) × {what}" for k, what in limits_named if limits[k][0]
    )
    cpu = med(j["cpu_seconds"] for j in rs)
    global text
    text += f"| {label} | {m:,.1f} {unit} | {fmt(vals)} | {p99:.2f} | {cpu:.2f} | {ratio} |\n"
    return m
row("PUT 1 MiB, new keys, 8 in flight", "put1m", "mib_per_second", ("write1m", "fio write"), ("fresh1m", "fio write to a new file"), ("durable1m", "fio durable appends"))
row("PUT 1 MiB, new keys, 8 in flight, aged node (--aged)", "put1m_aged", "mib_per_second", ("write1m", "fio write"), ("overdurable1m", "fio durable overwrites"))
row("PUT 1 MiB, new keys, 32 in flight, aged node (--aged)", "put1m_aged32", "mib_per_second", ("write1m", "fio write"), ("overdurable1m", "fio durable overwrites"))
row("GET 1 MiB, 8 in flight, --verify", "get1m", "mib_per_second", ("read1m", "fio read"))
row("PUT 4 KiB, new keys, 64 in flight", "put4k", "ops_per_second", ("sync4k", "fio write+fdatasync QD1"))
row("PUT 4 KiB, new keys, 256 in flight", "put4k256", "ops_per_second", ("sync4k", "fio write+fdatasync QD1"))
if scaling:
    text += "\n## 4 KiB durable PUTs by shard count (64 in flight per shard)\n\n| shards | median ops/s | runs | p99 ms | ratio to linear |\n|---|---|---|---|---|\n"
    counts = [int(n) for n in scaling.split()]
    base = None
    for n in counts:
        m, vals, p99, _ = engine(f"scale{n}", "ops_per_second")
        base = base or m / n
        text += f"| {n} | {m:,.0f} | {fmt(vals, 0)} | {p99:.2f} | {m / (base * n):.2f} |\n"
open(out, "w").write(text)
print(text)
EOF
