#!/usr/bin/env bash
# What access control costs the hot path: two nodes side by side, BASE (a
# build from before access control) and NEW, under the same closed-loop
# 4 KiB GET and PUT loads, alternating rounds (kaligon bench --compare), so
# the ratio NEW/BASE is measured on one noisy machine at one time. A third
# comparison puts NEW's default bucket against a NEW bucket with a bucket
# policy, a public-read bucket ACL and public-read objects (the slow path:
# every request parses and evaluates the policy).
#
#   tuning/access-cost.sh BASE_BIN [NEW_BIN]
#   ROUNDS=5 SECS=5 tuning/access-cost.sh /tmp/kaligon-base target/release/kaligon
#
# Needs aws-cli from tests/clients/setup.sh (target/clients/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/node.sh
BASE=${1:?usage: tuning/access-cost.sh BASE_BIN [NEW_BIN]}
NEW=${2:-target/release/kaligon}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CONC=${CONC:-16}
AWS=${AWS:-target/clients/venv/bin/aws}
node_scratch access
start_fresh_node "$BASE" "$WORK/base" 19410 "$WORK/base.log"
BASE_PID=$NODE
start_fresh_node "$NEW" "$WORK/new" 19411 "$WORK/new.log"
trap 'kill "$BASE_PID" "$NODE" 2>/dev/null; rm -rf "$WORK"' EXIT
A=http://127.0.0.1:19410
B=http://127.0.0.1:19411
bench() { "$NEW" bench --rounds "$ROUNDS" -d "${SECS}s" -c "$CONC" --size 4KiB "$@" | grep -E 'ratio|median| get | put ' || true; }

echo "== GET 4 KiB: BASE vs NEW (default bucket, owner requests)"
bench --endpoint "$A" --compare "$B" --workload get --objects 2000
echo "== PUT 4 KiB: BASE vs NEW"
bench --endpoint "$A" --compare "$B" --workload put --objects 2000

export AWS_ACCESS_KEY_ID=$KALIGON_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$KALIGON_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
"$AWS" --endpoint-url "$B" s3api create-bucket --bucket with-policy --acl public-read >/dev/null
"$AWS" --endpoint-url "$B" s3api put-bucket-policy --bucket with-policy --policy '{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::with-policy/public/*"},
 {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::with-policy/*",
  "Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}'
echo "== GET 4 KiB on NEW: default bucket vs a bucket with a policy and a public-read ACL (alternating runs)"
one() { "$NEW" bench --endpoint "$B" -d "${SECS}s" -c "$CONC" --size 4KiB --workload get --objects 2000 "$@" | grep '^  get' | sed 's/  */ /g'; }
one --bucket plain --prefix public/ >/dev/null
one --bucket with-policy --no-create --prefix public/ >/dev/null
for r in $(seq "$ROUNDS"); do
    echo "round $r default:     $(one --bucket plain --no-create --no-preload --prefix public/)"
    echo "round $r with-policy: $(one --bucket with-policy --no-create --no-preload --prefix public/)"
done
