"""Writes the README's compatibility table from the lanes' result files
(target/client-results/*.json, written by tests/clients.rs, tests/rclone.rs
and the AWS SDK for Rust tests). Run by tests/run.sh after the suite passed;
a client whose tests did not all pass has no file, so no row."""

import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.environ.get("KALIGON_CLIENT_RESULTS", os.path.join(ROOT, "target/client-results"))
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- clients:begin -->", "<!-- clients:end -->"
ORDER = ["aws-cli", "boto3", "rclone", "s3cmd", "minio-py", "@aws-sdk/client-s3 (JS v3)", "aws-sdk-s3 (Rust)", "curl"]


def nginx_version():
    try:
        nginx = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"
        r = subprocess.run([nginx, "-v"], capture_output=True, text=True)
        return r.stderr.strip().split("/")[-1]
    except OSError:
        return "?"


def main():
    rows = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        row = rows.setdefault(r["client"], {"version": r["version"], "via": set(), "scenarios": []})
        row["via"].add(r["via"])
        for s in r["scenarios"]:
            if s not in row["scenarios"] and not s.startswith("HTTPS uploads used"):
                row["scenarios"].append(s)
            elif s.startswith("HTTPS uploads used") and "aws-chunked" not in row.get("note", ""):
                row["note"] = "over HTTPS: aws-chunked uploads with trailing checksums checked"
    if not rows:
        sys.exit(f"no lane results under {RESULTS}")
    tls = f"HTTPS through nginx {nginx_version()} (TLS terminated, tuning/proxy/nginx-kaligon.conf)"
    lines = [BEGIN, "", "| Client | Version tested | Reached | Scenarios passed |", "|---|---|---|---|"]
    for client in sorted(rows, key=lambda c: (ORDER.index(c) if c in ORDER else len(ORDER), c)):
        row = rows[client]
        via = "direct" + (f"; {tls}" if "tls-proxy" in row["via"] else "")
        scenarios = "; ".join(row["scenarios"])
        if row.get("note"):
            scenarios += f" ({row['note']})"
        lines.append(f"| {client} | {row['version']} | {via} | {len(row['scenarios'])}: {scenarios} |")
    lines += ["", END]
    with open(README) as f:
        text = f.read()
    if BEGIN not in text:
        sys.exit(f"README.md has no {BEGIN} marker")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: "\n".join(lines), text, flags=re.S)
    with open(README, "w") as f:
        f.write(text)
    print(f"README.md: compatibility table with {len(rows)} clients")


main()
