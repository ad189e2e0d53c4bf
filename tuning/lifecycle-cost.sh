#!/usr/bin/env bash
# What the lifecycle worker costs foreground reads: a fresh node (one
# lifecycle day = 1 s) holds 10,000 x 4 KiB objects to read and EXPIRE
# (100,000) x 1 KiB objects to expire. Open-loop 4 KiB GETs at RATE/s run
# twice per round: first with no rules (worker idle), then right after a
# rule expiring the 100,000 objects is set, while the worker deletes them.
# Prints both GET summaries, how many objects were left after the loaded
# run, and how long the worker took to expire them all.
#
#   tuning/lifecycle-cost.sh [BIN]
#   ROUNDS=3 RATE=4000 tuning/lifecycle-cost.sh
#
# Needs aws-cli from tests/clients/setup.sh (target/clients/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/node.sh
BIN=${1:-target/release/kaligon}
PORT=${PORT:-19310}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-4000}
EXPIRE=${EXPIRE:-100000}
AWS=${AWS:-target/clients/venv/bin/aws}
node_scratch lifecycle
E=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$KALIGON_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$KALIGON_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
left() {
    "$AWS" --endpoint-url "$E" s3api list-objects-v2 --bucket expire --prefix exp/ --query KeyCount --output text \
        --max-keys 1000 --page-size 1000 2>/dev/null | awk '{s += $1} END {print s + 0}'
}
cat >"$WORK/lc.json" <<'EOF'
{"Rules": [{"ID": "expire", "Filter": {"Prefix": "exp/"}, "Status": "Enabled", "Expiration": {"Days": 1}}]}
EOF
for round in $(seq "$ROUNDS"); do
    start_fresh_node "$BIN" "$WORK/data" "$PORT" "$WORK/node.log" --lifecycle-day-secs 1
    "$BIN" bench --endpoint "$E" --workload get --size 4KiB --objects 10000 --ops 10 --prefix small/ >/dev/null
    "$BIN" bench --endpoint "$E" --bucket expire --workload put --size 1KiB --ops "$EXPIRE" -c 32 --prefix exp/ \
        | grep ' put ' | sed 's/^/  preload /'
    echo "round $round: GET 4 KiB at $RATE/s, worker idle"
    "$BIN" bench --endpoint "$E" --workload get --size 4KiB --objects 10000 --no-preload --prefix small/ \
        --rate "$RATE" -d 8s -c 16 | grep ' get '
    "$AWS" --endpoint-url "$E" s3api put-bucket-lifecycle-configuration --bucket expire \
        --lifecycle-configuration "file://$WORK/lc.json"
    t0=$(date +%s.%N)
    sleep 1
    echo "round $round: GET 4 KiB at $RATE/s, worker expiring $EXPIRE objects"
    "$BIN" bench --endpoint "$E" --workload get --size 4KiB --objects 10000 --no-preload --prefix small/ \
        --rate "$RATE" -d 8s -c 16 | grep ' get '
    echo "  objects left after the loaded run: $(left)"
    while [ "$(left)" != 0 ]; do sleep 0.5; done
    echo "  all expired $(echo "$(date +%s.%N) - $t0" | bc) s after the rule was set"
    grep -c "lifecycle pass" "$WORK/node.log" | sed 's/^/  passes that acted: /'
    kill "$NODE"; wait "$NODE" 2>/dev/null || true; NODE=
done
