"""aws-cli (v1, from PyPI) with its default configuration: `aws s3` high-level
commands and `aws s3api`, against a node directly or through the TLS proxy."""

import json
import os
import subprocess
import sys

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, WORK, Lane, MiB, data, expect_eq, http, md5,
                  multipart_etag, read_file, write_file)

AWS = os.path.join(os.path.dirname(sys.executable), "aws")
env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION,
           AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="")


def aws(*args, ok=True):
    cmd = [AWS, "--endpoint-url", ENDPOINT] + (["--ca-bundle", CA_BUNDLE] if CA_BUNDLE else []) + list(args)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if ok and r.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def api(*args):
    out = aws("s3api", *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


version = aws("--version").stdout.strip() or aws("--version").stderr.strip()
lane = Lane("aws-cli", version.split()[0].split("/")[1])
B = "awscli-lane"

with lane.scenario("s3 mb / ls"):
    aws("s3", "mb", f"s3://{B}")
    assert f" {B}\n" in aws("s3", "ls").stdout + "\n"

with lane.scenario("s3 cp up and down, metadata and content type"):
    body = data(1, 700_001)
    src = write_file("cli/small.bin", body)
    aws("s3", "cp", src, f"s3://{B}/small/one.bin", "--content-type", "application/x-small",
        "--metadata", "owner=cli")
    head = api("head-object", "--bucket", B, "--key", "small/one.bin")
    expect_eq("ETag", head["ETag"], f'"{md5(body)}"')
    expect_eq("content type", head["ContentType"], "application/x-small")
    expect_eq("metadata", head["Metadata"], {"owner": "cli"})
    back = os.path.join(WORK, "cli/small.back")
    aws("s3", "cp", f"s3://{B}/small/one.bin", back)
    expect_eq("downloaded", read_file(back), body)

with lane.scenario("s3 cp of 60 MiB (multipart) up and down"):
    big = data(2, 60 * MiB + 11)
    src = write_file("cli/big.bin", big)
    aws("s3", "cp", src, f"s3://{B}/big.bin")
    head = api("head-object", "--bucket", B, "--key", "big.bin")
    # aws-cli's default multipart_chunksize is 8 MiB.
    expect_eq("multipart ETag", head["ETag"], f'"{multipart_etag(big, 8 * MiB)}"')
    back = os.path.join(WORK, "cli/big.back")
    aws("s3", "cp", f"s3://{B}/big.bin", back)
    expect_eq("downloaded", read_file(back), big)

with lane.scenario("s3 sync up, re-sync uploads nothing, sync down"):
    tree = {"a.txt": data(3, 1000), "sub/b.bin": data(4, 300_000), "sub/deep/c d+e.txt": data(5, 10),
            "empty": b""}
    root = os.path.join(WORK, "cli/tree")
    for name, b in tree.items():
        write_file(f"cli/tree/{name}", b)
    first = aws("s3", "sync", root, f"s3://{B}/tree/").stdout
    expect_eq("uploaded on first sync", first.count("upload:"), len(tree))
    again = aws("s3", "sync", root, f"s3://{B}/tree/").stdout
    expect_eq("second sync output", again.strip(), "")
    down = os.path.join(WORK, "cli/tree.back")
    aws("s3", "sync", f"s3://{B}/tree/", down)
    for name, b in tree.items():
        expect_eq(f"synced {name}", read_file(os.path.join(down, name)), b)
    listing = aws("s3", "ls", "--recursive", f"s3://{B}/tree/").stdout
    listed = sorted(line.split(maxsplit=3)[3] for line in listing.splitlines() if line.strip())
    expect_eq("listed", listed, sorted(f"tree/{name}" for name in tree))

with lane.scenario("s3 presign (GET)"):
    url = aws("s3", "presign", f"s3://{B}/small/one.bin", "--expires-in", "300").stdout.strip()
    status, _, got = http("GET", url)
    expect_eq("presigned GET", (status, got), (200, data(1, 700_001)))

with lane.scenario("s3 rm / rb --force, errors exit non-zero"):
    aws("s3", "rm", f"s3://{B}/tree/", "--recursive")
    left = api("list-objects-v2", "--bucket", B, "--prefix", "tree/")
    expect_eq("left under tree/", left.get("Contents", []), [])
    missing = aws("s3", "cp", f"s3://{B}/missing", os.path.join(WORK, "cli/missing"), ok=False)
    assert missing.returncode != 0 and "404" in missing.stderr, missing.stderr

with lane.scenario("s3api versioning"):
    V = "awscli-versions"
    api("create-bucket", "--bucket", V)
    api("put-bucket-versioning", "--bucket", V, "--versioning-configuration", "Status=Enabled")
    expect_eq("versioning status", api("get-bucket-versioning", "--bucket", V)["Status"], "Enabled")
    one = write_file("cli/v1", b"one")
    two = write_file("cli/v2", b"two")
    v1 = api("put-object", "--bucket", V, "--key", "doc", "--body", one)["VersionId"]
    v2 = api("put-object", "--bucket", V, "--key", "doc", "--body", two)["VersionId"]
    marker = api("delete-object", "--bucket", V, "--key", "doc")
    assert marker.get("DeleteMarker"), marker
    vs = api("list-object-versions", "--bucket", V)
    expect_eq("versions", [v["VersionId"] for v in vs["Versions"]], [v2, v1])
    expect_eq("markers", len(vs["DeleteMarkers"]), 1)
    out = os.path.join(WORK, "cli/v1.back")
    api("get-object", "--bucket", V, "--key", "doc", "--version-id", v1, out)
    expect_eq("first version", read_file(out), b"one")
    # rb --force removes current objects (leaving markers); the versions remain, so the bucket stays.
    refused = aws("s3", "rb", f"s3://{V}", "--force", ok=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr, refused.stderr

with lane.scenario("s3api multipart: create, upload-part, list-parts, complete"):
    key = "mpu/api.bin"
    parts_data = [data(10, 5 * MiB), data(11, 5 * MiB), data(12, 999)]
    up = api("create-multipart-upload", "--bucket", B, "--key", key)["UploadId"]
    parts = []
    for n, b in enumerate(parts_data, 1):
        path = write_file(f"cli/part{n}", b)
        r = api("upload-part", "--bucket", B, "--key", key, "--upload-id", up, "--part-number", str(n), "--body", path)
        expect_eq(f"part {n} ETag", r["ETag"], f'"{md5(b)}"')
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = api("list-parts", "--bucket", B, "--key", key, "--upload-id", up)
    expect_eq("listed parts", [p["PartNumber"] for p in listed["Parts"]], [1, 2, 3])
    uploads = api("list-multipart-uploads", "--bucket", B)
    expect_eq("open uploads", [u["UploadId"] for u in uploads["Uploads"]], [up])
    done = api("complete-multipart-upload", "--bucket", B, "--key", key, "--upload-id", up,
               "--multipart-upload", json.dumps({"Parts": parts}))
    whole = b"".join(parts_data)
    expect_eq("completed ETag", done["ETag"], f'"{multipart_etag(whole, 5 * MiB)}"')
    out = os.path.join(WORK, "cli/mpu.back")
    api("get-object", "--bucket", B, "--key", key, out)
    expect_eq("completed body", read_file(out), whole)

with lane.scenario("s3api list-objects-v2 pagination (--max-items / --page-size)"):
    keys = [f"page/{i:03d}" for i in range(12)]
    for i, k in enumerate(keys):
        write_file(f"cli/page/{i:03d}", b"")
    aws("s3", "cp", "--recursive", os.path.join(WORK, "cli/page"), f"s3://{B}/page/")
    seen = api("list-objects-v2", "--bucket", B, "--prefix", "page/", "--page-size", "5")
    expect_eq("all pages", [o["Key"] for o in seen["Contents"]], keys)
    first = api("list-objects-v2", "--bucket", B, "--prefix", "page/", "--max-items", "4", "--page-size", "3")
    expect_eq("first 4", [o["Key"] for o in first["Contents"]], keys[:4])
    rest = api("list-objects-v2", "--bucket", B, "--prefix", "page/", "--starting-token", first["NextToken"])
    expect_eq("the rest", [o["Key"] for o in rest["Contents"]], keys[4:])

lane.finish()
