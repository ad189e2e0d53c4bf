"""curl: on presigned URLs (made by boto3), with its own SigV4 signing
(`--aws-sigv4`), and anonymous requests, which get S3's XML refusals."""

import os
import subprocess
import time

import boto3
from botocore.config import Config

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, WORK, Lane, data, expect_eq, md5, read_file,
                  write_file)


def curl(*args):
    """Runs curl; returns (status, headers (lowercase names), body bytes)."""
    head = os.path.join(WORK, "curl.head")
    body = os.path.join(WORK, "curl.body")
    cmd = ["curl", "-sS", "-D", head, "-o", body, "-w", "%{http_code}"]
    cmd += ["--cacert", CA_BUNDLE] if CA_BUNDLE else []
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"curl {args} failed: {r.stderr}")
    headers = {}
    for line in read_file(head).decode("latin-1").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(r.stdout), headers, read_file(body)


def refused(what, got, status, code):
    s, h, body = got
    expect_eq(f"{what} status", s, status)
    assert f"<Code>{code}</Code>".encode() in body, (what, body)
    assert h.get("content-type", "").startswith("application/xml"), (what, h)


version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
lane = Lane("curl", version)
s3 = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                           region_name=REGION).client("s3", endpoint_url=ENDPOINT, verify=CA_BUNDLE or True,
                                                      config=Config(signature_version="s3v4"))
B = "curl-lane"
s3.create_bucket(Bucket=B)
body = data(1, 1_234_567)
src = write_file("curl/body.bin", body)

with lane.scenario("presigned PUT and GET"):
    put = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "pre/a b.bin"}, ExpiresIn=300)
    status, h, _ = curl("-X", "PUT", "--upload-file", src, put)
    expect_eq("PUT status", status, 200)
    expect_eq("PUT ETag", h.get("etag"), f'"{md5(body)}"')
    get = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "pre/a b.bin"}, ExpiresIn=300)
    status, h, got = curl(get)
    expect_eq("GET", (status, got), (200, body))
    status, h, got = curl("-r", "10-19", get)
    expect_eq("ranged GET", (status, got, h.get("content-range")), (206, body[10:20], f"bytes 10-19/{len(body)}"))

with lane.scenario("expired and tampered presigned URLs"):
    short = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "pre/a b.bin"}, ExpiresIn=1)
    time.sleep(2.1)
    refused("expired URL", curl(short), 403, "AccessDenied")
    other = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "pre/other"}, ExpiresIn=300)
    refused("URL moved to another key", curl(other.replace("pre/other", "pre/a%20b.bin")), 403,
            "SignatureDoesNotMatch")

with lane.scenario("curl --aws-sigv4 signed PUT, GET, list"):
    sign = ["--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{ACCESS_KEY}:{SECRET_KEY}"]
    # Debian's curl 7.88 does not send x-amz-content-sha256, which S3 requires with SigV4 headers
    # ("-H 'name:'" makes sure it is absent whatever the version).
    refused("signed without x-amz-content-sha256",
            curl(*sign, "-H", "x-amz-content-sha256:", f"{ENDPOINT}/{B}/pre/a%20b.bin"), 400, "InvalidRequest")
    sign += ["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
    status, h, _ = curl(*sign, "-X", "PUT", "--upload-file", src, "-H", "x-amz-meta-via: curl",
                        f"{ENDPOINT}/{B}/signed.bin")
    expect_eq("signed PUT", (status, h.get("etag")), (200, f'"{md5(body)}"'))
    status, h, got = curl(*sign, f"{ENDPOINT}/{B}/signed.bin")
    expect_eq("signed GET", (status, got, h.get("x-amz-meta-via")), (200, body, "curl"))
    status, _, listing = curl(*sign, f"{ENDPOINT}/{B}?list-type=2&prefix=signed")
    assert status == 200 and b"<Key>signed.bin</Key>" in listing, listing

with lane.scenario("anonymous requests refused with S3 XML"):
    refused("anonymous GET object", curl(f"{ENDPOINT}/{B}/signed.bin"), 403, "AccessDenied")
    refused("anonymous PUT", curl("-X", "PUT", "--data-binary", "x", f"{ENDPOINT}/{B}/anon"), 403, "AccessDenied")
    refused("anonymous list", curl(f"{ENDPOINT}/{B}"), 403, "AccessDenied")
    refused("anonymous list buckets", curl(f"{ENDPOINT}/"), 403, "AccessDenied")
    refused("anonymous DELETE", curl("-X", "DELETE", f"{ENDPOINT}/{B}/signed.bin"), 403, "AccessDenied")
    expect_eq("object untouched", s3.get_object(Bucket=B, Key="signed.bin")["Body"].read(), body)
    status, _, ready = curl(f"{ENDPOINT}/health/ready")
    expect_eq("health/ready (unauthenticated)", status, 200)

lane.finish()
