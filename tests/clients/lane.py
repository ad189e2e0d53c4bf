"""Scaffolding shared by the Python client lanes.

A lane is one real client driving one node that tests/clients.rs started.
The node's address and keys come from the environment; every scenario
checks what comes back (bytes, ETags, metadata), and the lane writes what
it covered to a JSON file that tests/clients/table.py turns into the
README's compatibility table.
"""

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

ENDPOINT = os.environ["KALIGON_ENDPOINT"]
ACCESS_KEY = os.environ["KALIGON_ACCESS_KEY"]
SECRET_KEY = os.environ["KALIGON_SECRET_KEY"]
REGION = "us-east-1"
# Set when the endpoint is the TLS proxy: the self-signed certificate.
CA_BUNDLE = os.environ.get("KALIGON_CA") or None
VIA = os.environ.get("KALIGON_VIA", "direct")
WORK = os.environ["KALIGON_WORK"]
MiB = 1 << 20


def data(seed, size):
    """Deterministic bytes that differ per seed."""
    return random.Random(seed).randbytes(size)


def md5(b):
    return hashlib.md5(b).hexdigest()


def multipart_etag(body, part_size):
    """AWS's ETag of a multipart object: md5 of the part md5s, then -N."""
    parts = [body[i:i + part_size] for i in range(0, len(body), part_size)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


def write_file(name, body):
    path = os.path.join(WORK, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
    return path


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def expect_eq(what, got, want):
    if got != want:
        if isinstance(got, bytes) and isinstance(want, bytes):
            raise AssertionError(f"{what}: {len(got)} bytes (md5 {md5(got)}), want {len(want)} (md5 {md5(want)})")
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


class Lane:
    def __init__(self, client, version):
        self.client = client
        self.version = version
        self.scenarios = []

    @contextlib.contextmanager
    def scenario(self, name):
        start = time.monotonic()
        print(f"[{self.client} {VIA}] {name} ...", flush=True)
        yield
        ms = int((time.monotonic() - start) * 1000)
        print(f"[{self.client} {VIA}] {name}: ok ({ms} ms)", flush=True)
        self.scenarios.append(name)

    def finish(self):
        out = os.environ.get("KALIGON_LANE_OUT")
        if out:
            with open(out, "w") as f:
                json.dump({"client": self.client, "version": self.version, "via": VIA,
                           "scenarios": self.scenarios}, f, indent=1)
        print(f"[{self.client} {VIA}] {len(self.scenarios)} scenarios passed", flush=True)


def s3_error_code(exc):
    """The S3 error code of a botocore ClientError."""
    return exc.response.get("Error", {}).get("Code")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def http(method, url, body=None, headers=None):
    """One plain HTTP(S) request, sending exactly the headers given (urllib
    would add a Content-Type that presigned SigV2 URLs sign). Returns
    (status, headers, body)."""
    import http.client
    import ssl
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=CA_BUNDLE) if CA_BUNDLE else None
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=60)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def aws(*args):
    """Runs aws-cli from the venv against the node; its stdout (fails the lane on an error)."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION)
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "aws"), "--endpoint-url", ENDPOINT, *args],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"aws {' '.join(args)} failed: {out.stderr}"
    return out.stdout


def s3cmd(*args):
    """Runs s3cmd (Debian's) against the node, SigV4; its stdout (fails the lane on an error)."""
    host = ENDPOINT.split("://", 1)[1]
    cfg = write_file("s3cmd.cfg", (f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n"
                                   f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
                                   f"signature_v2 = False\nbucket_location = {REGION}\nproxy_host = \n"
                                   "proxy_port = 0\nprogress_meter = False\n").encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3CMD"))}
    out = subprocess.run([shutil.which("s3cmd") or "s3cmd", "-c", cfg, *args], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, f"s3cmd {' '.join(args)} failed: {out.stdout}{out.stderr}"
    return out.stdout
