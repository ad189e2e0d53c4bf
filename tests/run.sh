#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests that drive a real
# node (real sockets, real files, real kill -9) with real S3 clients.
# Installs what the tests need by itself, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fixed-size buffers only: compio registers no memory, so no memlock is
# needed; raise it anyway where allowed in case a runtime option needs it.
ulimit -l unlimited 2>/dev/null || true

# Real clients the tests drive, from Debian's packages.
need=()
command -v rclone >/dev/null || need+=(rclone)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

cargo build --all-targets
cargo test --all-targets -- --test-threads=2
