#!/usr/bin/env bash
# Installs the real clients the test suite drives, idempotently:
# Debian packages (rclone, s3cmd, nginx, curl, openssl, e2fsprogs,
# chromium for the browser test, haproxy for the fleet test), a Python venv with aws-cli, boto3 and
# minio-py at pinned versions (tests/clients/requirements.txt), and from npm
# the AWS SDK for JavaScript v3 and puppeteer-core, which drives the system
# Chromium (tests/clients/js/package-lock.json). Re-runs are no-ops.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
for pair in rclone:rclone s3cmd:s3cmd nginx:nginx curl:curl openssl:openssl mkfs.ext4:e2fsprogs chromium:chromium haproxy:haproxy; do
  bin="${pair%%:*}"
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || [ -x "/sbin/$bin" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  # Packages must not start daemons (nginx would take port 80): the tests
  # start what they need themselves.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

venv=target/clients/venv
stamp="$(sha256sum tests/clients/requirements.txt | cut -c1-16)"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/clients/requirements.txt
  echo "$stamp" > "$venv/.stamp"
fi

js=tests/clients/js
stamp="$(sha256sum "$js/package-lock.json" | cut -c1-16)"
if [ "$(cat "$js/node_modules/.stamp" 2>/dev/null)" != "$stamp" ]; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" > "$js/node_modules/.stamp"
fi
