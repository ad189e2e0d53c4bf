#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests that drive a real
# node (real sockets, real files, real kill -9) with real S3 clients.
# Installs what the tests need by itself, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fixed-size buffers only: compio registers no memory, so no memlock is
# needed; raise it anyway where allowed in case a runtime option needs it.
ulimit -l unlimited 2>/dev/null || true

# Real clients the tests drive: Debian packages, a Python venv (aws-cli,
# boto3, minio-py) and the AWS SDK for JavaScript v3 from npm.
tests/clients/setup.sh

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

cargo build --all-targets
# Lanes record what they covered here; the README table is made from it.
export KALIGON_CLIENT_RESULTS="$PWD/target/client-results"
rm -rf "$KALIGON_CLIENT_RESULTS"
cargo test --all-targets -- --test-threads=2
python3 tests/clients/table.py
