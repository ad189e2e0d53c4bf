"""s3cmd (run as a subprocess, path-style, SigV4) against a node, directly or
through the TLS proxy: buckets, metadata headers, multipart uploads, sync up
and down, server-side copy and recursive deletes."""

import os
import re
import subprocess
import urllib.parse

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, WORK, Lane, MiB, data, expect_eq, md5,
                  multipart_etag, read_file, write_file)

S3CMD = os.environ.get("KALIGON_S3CMD", "s3cmd")

url = urllib.parse.urlsplit(ENDPOINT)
CONFIG = os.path.join(WORK, "s3cmd", "s3cfg")
os.makedirs(os.path.dirname(CONFIG), exist_ok=True)
with open(CONFIG, "w") as f:
    f.write("[default]\n"
            f"access_key = {ACCESS_KEY}\n"
            f"secret_key = {SECRET_KEY}\n"
            f"host_base = {url.netloc}\n"
            # No %(bucket)s: path-style addressing.
            f"host_bucket = {url.netloc}\n"
            f"use_https = {url.scheme == 'https'}\n"
            f"ca_certs_file = {CA_BUNDLE or ''}\n"
            "check_ssl_certificate = True\n"
            "check_ssl_hostname = True\n"
            "signature_v2 = False\n"
            f"bucket_location = {REGION}\n"
            "proxy_host = \n"
            "proxy_port = 0\n"
            "progress_meter = False\n")

# Nothing from the caller's environment may change what s3cmd signs or where it connects.
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("AWS_", "S3CMD")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def s3cmd(*args, ok=True):
    """Runs s3cmd; returns (exit code, stdout + stderr). With ok, a non-zero exit fails the lane."""
    p = subprocess.run([S3CMD, "-c", CONFIG, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    out = p.stdout.decode(errors="replace")
    if ok and p.returncode != 0:
        raise AssertionError(f"s3cmd {' '.join(args)} exited {p.returncode}:\n{out}")
    return p.returncode, out


def info(uri):
    """`s3cmd info` as a dict of its 'Name: value' lines."""
    _, out = s3cmd("info", uri)
    fields = {}
    for line in out.splitlines()[1:]:
        name, sep, value = line.strip().partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def head_etag(bucket, key):
    """The ETag the node reports, read with boto3 (s3cmd shows its own whole-file MD5 for multipart objects)."""
    import boto3
    s3 = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                               region_name=REGION).client("s3", endpoint_url=ENDPOINT, verify=CA_BUNDLE or True)
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]


def tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            files[os.path.relpath(p, root)] = read_file(p)
    return files


version = subprocess.run([S3CMD, "--version"], env=ENV, stdout=subprocess.PIPE, check=True).stdout.decode()
lane = Lane("s3cmd", version.strip().removeprefix("s3cmd version "))

B = "s3cmd-lane"
L = os.path.join(WORK, "s3cmd")


def check_stored(key, body, what):
    """s3cmd info, the server's ETag and s3cmd get of the key all agree with body, the lane's
    MIME type and its metadata; returns the info fields."""
    fields = info(f"s3://{B}/{key}")
    expect_eq(f"{what} MD5", fields.get("MD5 sum"), md5(body))
    expect_eq(f"{what} MIME type", fields.get("MIME type"), "application/x-lane")
    expect_eq(f"{what} metadata", fields.get("x-amz-meta-owner"), "lane")
    expect_eq(f"{what} ETag", head_etag(B, key), f'"{md5(body)}"')
    dst = os.path.join(L, f"{what}.back")
    s3cmd("get", "--force", f"s3://{B}/{key}", dst)
    expect_eq(f"{what} got back", read_file(dst), body)
    return fields

with lane.scenario("mb, ls shows the bucket"):
    s3cmd("mb", f"s3://{B}")
    _, out = s3cmd("ls")
    assert re.search(rf"\ss3://{B}/?$", out, re.M), out
    _, out = s3cmd("ls", f"s3://{B}")
    expect_eq("new bucket listing", out.strip(), "")

with lane.scenario("put with --mime-type and x-amz-meta header, info, get"):
    body = data(1, 300_001)
    src = write_file("s3cmd/small.bin", body)
    s3cmd("put", src, f"s3://{B}/dir/small file.bin", "--mime-type=application/x-lane",
          "--add-header=x-amz-meta-owner:lane")
    fields = check_stored("dir/small file.bin", body, "put")
    expect_eq("info size", fields.get("File size"), str(len(body)))
    _, out = s3cmd("ls", f"s3://{B}/dir/")
    assert re.search(rf"\s{len(body)}\s+s3://{B}/dir/small file\.bin$", out, re.M), out

with lane.scenario("multipart put (20 MiB + 1, 5 MiB chunks) and get"):
    big = data(2, 20 * MiB + 1)
    src = write_file("s3cmd/big.bin", big)
    s3cmd("put", src, f"s3://{B}/big/file.bin", "--multipart-chunk-size-mb=5")
    expect_eq("multipart ETag", head_etag(B, "big/file.bin"), f'"{multipart_etag(big, 5 * MiB)}"')
    fields = info(f"s3://{B}/big/file.bin")
    expect_eq("multipart info size", fields.get("File size"), str(len(big)))
    expect_eq("multipart info MD5", fields.get("MD5 sum"), md5(big))
    dst = os.path.join(L, "big.back")
    s3cmd("get", "--force", f"s3://{B}/big/file.bin", dst)
    expect_eq("multipart got back", read_file(dst), big)

with lane.scenario("sync up, re-sync uploads nothing, sync down"):
    up = os.path.join(L, "up")
    files = {
        "top.txt": b"top level\n",
        "with space.txt": data(3, 1234),
        "nested/a.bin": data(4, 70_000),
        "nested/deeper/b.bin": data(5, 2 * MiB + 7),
        "nested/deeper/empty": b"",
    }
    for name, body in files.items():
        write_file(os.path.join("s3cmd", "up", name), body)
    _, out = s3cmd("sync", up + "/", f"s3://{B}/sync/")
    uploaded = sorted(re.findall(r"^upload: '.*' -> 's3://[^/]+/sync/(.*)'", out, re.M))
    expect_eq("first sync uploads", uploaded, sorted(files))
    _, out = s3cmd("sync", up + "/", f"s3://{B}/sync/")
    assert "upload:" not in out, f"second sync uploaded again:\n{out}"
    for name, body in files.items():
        expect_eq(f"synced ETag of {name}", head_etag(B, f"sync/{name}"), f'"{md5(body)}"')
    # One change: only that file goes up again; a removed file is deleted with --delete-removed.
    files["nested/a.bin"] = data(6, 70_000)
    write_file("s3cmd/up/nested/a.bin", files["nested/a.bin"])
    os.remove(os.path.join(up, "top.txt"))
    del files["top.txt"]
    _, out = s3cmd("sync", "--delete-removed", up + "/", f"s3://{B}/sync/")
    expect_eq("changed-file sync uploads", re.findall(r"^upload: '.*' -> 's3://[^/]+/sync/(.*)'", out, re.M),
              ["nested/a.bin"])
    expect_eq("removed-file sync deletes", re.findall(r"^delete: 's3://[^/]+/sync/(.*)'", out, re.M), ["top.txt"])
    down = os.path.join(L, "down")
    s3cmd("sync", f"s3://{B}/sync/", down + "/")
    got = tree(down)
    expect_eq("synced-down names", sorted(got), sorted(files))
    for name, body in files.items():
        expect_eq(f"synced-down {name}", got[name], body)

with lane.scenario("cp (server-side copy) keeps bytes and metadata"):
    s3cmd("cp", f"s3://{B}/dir/small file.bin", f"s3://{B}/copy/small.bin")
    body = data(1, 300_001)
    check_stored("copy/small.bin", body, "copy")
    dst = os.path.join(L, "copy.back")
    s3cmd("cp", f"s3://{B}/big/file.bin", f"s3://{B}/copy/big.bin")
    s3cmd("get", "--force", f"s3://{B}/copy/big.bin", dst)
    expect_eq("big copy got back", read_file(dst), data(2, 20 * MiB + 1))

with lane.scenario("get/info of a missing key fail"):
    code, out = s3cmd("get", "--force", f"s3://{B}/missing", os.path.join(L, "missing"), ok=False)
    assert code != 0, f"get of a missing key exited 0:\n{out}"
    assert "does not exist" in out or "404" in out, out
    assert not os.path.exists(os.path.join(L, "missing")), "get of a missing key wrote a file"
    code, out = s3cmd("info", f"s3://{B}/missing", ok=False)
    assert code != 0 and "404" in out, (code, out)

with lane.scenario("del, del --recursive, rb"):
    s3cmd("del", f"s3://{B}/copy/big.bin")
    _, out = s3cmd("ls", f"s3://{B}/copy/")
    assert "big.bin" not in out and "small.bin" in out, out
    code, out = s3cmd("rb", f"s3://{B}", ok=False)
    assert code != 0 and "BucketNotEmpty" in out, (code, out)
    s3cmd("del", "--recursive", "--force", f"s3://{B}/")
    _, out = s3cmd("ls", "--recursive", f"s3://{B}")
    expect_eq("left after del --recursive", out.strip(), "")
    s3cmd("rb", f"s3://{B}")
    _, out = s3cmd("ls")
    assert f"s3://{B}" not in out, out
    R = "s3cmd-lane-rb"
    s3cmd("mb", f"s3://{R}")
    s3cmd("put", os.path.join(L, "small.bin"), f"s3://{R}/a/b")
    s3cmd("rb", "--recursive", "--force", f"s3://{R}")
    _, out = s3cmd("ls")
    assert f"s3://{R}" not in out, out

lane.finish()
