"""boto3 with its default configuration (default checksums: CRC32 on every
upload, response validation when supported) against a node, directly or
through the TLS proxy."""

import concurrent.futures
import io
import uuid

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, VIA, Lane, MiB, data, expect_eq, http, md5,
                  multipart_etag, read_file, s3_error_code, write_file)
import multipart_form

lane = Lane("boto3", f"{boto3.__version__} (botocore {botocore.__version__})")
session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                region_name=REGION)


def client(**config):
    return session.client("s3", endpoint_url=ENDPOINT, verify=CA_BUNDLE or True,
                          config=Config(**config) if config else None)


s3 = client()
payload_modes = set()


def note_payload_mode(request, **_):
    mode = request.headers.get("x-amz-content-sha256")
    payload_modes.add(mode.decode() if isinstance(mode, bytes) else mode)


s3.meta.events.register("before-send.s3.PutObject", note_payload_mode)
s3.meta.events.register("before-send.s3.UploadPart", note_payload_mode)


B = "boto3-lane"

with lane.scenario("create/head/list buckets"):
    s3.create_bucket(Bucket=B)
    s3.head_bucket(Bucket=B)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert B in names, names
    # us-east-1 answers a second CreateBucket by its owner with 200 (AWS's
    # legacy rule); the bucket is left as it was.
    s3.create_bucket(Bucket=B)

with lane.scenario("put/get/head with metadata and default CRC32 checksums"):
    body = data(1, 3 * MiB + 17)
    put = s3.put_object(Bucket=B, Key="dir/a b+c.bin", Body=body, ContentType="application/x-test",
                        Metadata={"owner": "lane", "Mixed-Case": "v"}, CacheControl="no-cache")
    expect_eq("put ETag", put["ETag"], f'"{md5(body)}"')
    assert put.get("ChecksumCRC32"), f"no CRC32 echoed: {put}"
    got = s3.get_object(Bucket=B, Key="dir/a b+c.bin", ChecksumMode="ENABLED")
    expect_eq("get body", got["Body"].read(), body)
    expect_eq("get ETag", got["ETag"], put["ETag"])
    expect_eq("get CRC32", got.get("ChecksumCRC32"), put["ChecksumCRC32"])
    expect_eq("content type", got["ContentType"], "application/x-test")
    expect_eq("metadata", got["Metadata"], {"owner": "lane", "mixed-case": "v"})
    expect_eq("cache control", got["CacheControl"], "no-cache")
    head = s3.head_object(Bucket=B, Key="dir/a b+c.bin")
    expect_eq("head length", head["ContentLength"], len(body))
    expect_eq("head ETag", head["ETag"], put["ETag"])
    rng = s3.get_object(Bucket=B, Key="dir/a b+c.bin", Range="bytes=100-199")
    expect_eq("range", rng["Body"].read(), body[100:200])
    expect_eq("content-range", rng["ContentRange"], f"bytes 100-199/{len(body)}")
    # A streaming (file) body: over HTTPS botocore sends it aws-chunked with a trailing CRC32.
    s3.put_object(Bucket=B, Key="stream.bin", Body=io.BytesIO(body))
    expect_eq("streamed body", s3.get_object(Bucket=B, Key="stream.bin")["Body"].read(), body)
    empty = s3.put_object(Bucket=B, Key="empty", Body=b"")
    expect_eq("empty ETag", empty["ETag"], '"d41d8cd98f00b204e9800998ecf8427e"')
    expect_eq("empty body", s3.get_object(Bucket=B, Key="empty")["Body"].read(), b"")

with lane.scenario("errors: NoSuchKey, NoSuchBucket, 404 on HEAD, precondition"):
    try:
        s3.get_object(Bucket=B, Key="missing")
        raise AssertionError("GET of a missing key succeeded")
    except s3.exceptions.NoSuchKey:
        pass
    try:
        s3.head_object(Bucket=B, Key="missing")
        raise AssertionError("HEAD of a missing key succeeded")
    except ClientError as e:
        expect_eq("HEAD status", e.response["ResponseMetadata"]["HTTPStatusCode"], 404)
    try:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
        raise AssertionError("listing a missing bucket succeeded")
    except s3.exceptions.NoSuchBucket:
        pass
    try:
        s3.get_object(Bucket=B, Key="empty", IfMatch='"0123"')
        raise AssertionError("If-Match with a wrong ETag succeeded")
    except ClientError as e:
        expect_eq("If-Match code", s3_error_code(e), "PreconditionFailed")

with lane.scenario("upload_file/download_file multipart (40 MiB, 8 MiB parts)"):
    big = data(2, 40 * MiB + 5)
    src = write_file("boto3/big.bin", big)
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    s3.upload_file(src, B, "big/file.bin", Config=cfg, ExtraArgs={"Metadata": {"kind": "big"}})
    head = s3.head_object(Bucket=B, Key="big/file.bin")
    expect_eq("multipart ETag", head["ETag"], f'"{multipart_etag(big, 8 * MiB)}"')
    expect_eq("multipart metadata", head["Metadata"], {"kind": "big"})
    dst = write_file("boto3/big.back", b"")
    s3.download_file(B, "big/file.bin", dst, Config=cfg)
    expect_eq("downloaded", read_file(dst), big)
    # A plain GET of the whole multipart object with validation enabled.
    got = s3.get_object(Bucket=B, Key="big/file.bin", ChecksumMode="ENABLED")
    expect_eq("multipart GET", got["Body"].read(), big)
    part = s3.get_object(Bucket=B, Key="big/file.bin", PartNumber=2)
    expect_eq("part 2", part["Body"].read(), big[8 * MiB:16 * MiB])
    expect_eq("parts count", part["PartsCount"], 6)

with lane.scenario("low-level multipart with SHA256 checksums, list parts, abort"):
    key = "mpu/explicit.bin"
    up = s3.create_multipart_upload(Bucket=B, Key=key, ChecksumAlgorithm="SHA256")
    parts = []
    bodies = [data(10 + i, 5 * MiB if i < 2 else 1234) for i in range(3)]
    for i, b in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=B, Key=key, UploadId=up["UploadId"], PartNumber=i, Body=b,
                           ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": i, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    listed = s3.list_parts(Bucket=B, Key=key, UploadId=up["UploadId"])
    expect_eq("listed parts", [p["PartNumber"] for p in listed["Parts"]], [1, 2, 3])
    uploads = s3.list_multipart_uploads(Bucket=B, Prefix="mpu/")["Uploads"]
    expect_eq("listed uploads", [u["UploadId"] for u in uploads], [up["UploadId"]])
    done = s3.complete_multipart_upload(Bucket=B, Key=key, UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    whole = b"".join(bodies)
    expect_eq("completed ETag", done["ETag"], f'"{multipart_etag(whole, 5 * MiB)}"')
    got = s3.get_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
    expect_eq("completed body", got["Body"].read(), whole)
    assert got.get("ChecksumSHA256", "").endswith("-3"), got.get("ChecksumSHA256")
    gone = s3.create_multipart_upload(Bucket=B, Key="mpu/aborted")
    s3.upload_part(Bucket=B, Key="mpu/aborted", UploadId=gone["UploadId"], PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=B, Key="mpu/aborted", UploadId=gone["UploadId"])
    try:
        s3.list_parts(Bucket=B, Key="mpu/aborted", UploadId=gone["UploadId"])
        raise AssertionError("aborted upload still listed")
    except s3.exceptions.NoSuchUpload:
        pass

with lane.scenario("copy_object and managed copy (multipart copy)"):
    r = s3.copy_object(Bucket=B, Key="copy/a", CopySource={"Bucket": B, "Key": "dir/a b+c.bin"},
                       MetadataDirective="REPLACE", Metadata={"new": "1"}, ContentType="text/plain")
    got = s3.get_object(Bucket=B, Key="copy/a")
    expect_eq("copied body", got["Body"].read(), data(1, 3 * MiB + 17))
    expect_eq("copied metadata", got["Metadata"], {"new": "1"})
    expect_eq("copied ETag", got["ETag"], r["CopyObjectResult"]["ETag"])
    s3.copy({"Bucket": B, "Key": "big/file.bin"}, B, "copy/big",
            Config=TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=16 * MiB))
    got = s3.get_object(Bucket=B, Key="copy/big")
    expect_eq("managed copy", got["Body"].read(), data(2, 40 * MiB + 5))

with lane.scenario("paginated listings (v1 and v2, delimiter, 1,100 keys)"):
    keys = [f"list/{i // 100:02d}/{i:05d}" for i in range(1100)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=B, Key=k, Body=k.encode()), keys))
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=B, Prefix="list/"):
        seen += [o["Key"] for o in page.get("Contents", [])]
    expect_eq("v2 listing", seen, keys)
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=B, Prefix="list/",
                                                          PaginationConfig={"PageSize": 300}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    expect_eq("v1 listing", seen, keys)
    prefixes = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=B, Prefix="list/", Delimiter="/",
                                                             PaginationConfig={"PageSize": 4}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    expect_eq("common prefixes", prefixes, [f"list/{i:02d}/" for i in range(11)])

with lane.scenario("delete_objects (1,000 keys per request) and delete_object"):
    resp = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in keys[:1000]]})
    expect_eq("deleted count", len(resp["Deleted"]), 1000)
    resp = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in keys[1000:]], "Quiet": True})
    assert not resp.get("Errors"), resp
    s3.delete_object(Bucket=B, Key="empty")
    left = s3.list_objects_v2(Bucket=B, Prefix="list/")
    expect_eq("left after delete", left["KeyCount"], 0)

with lane.scenario("presigned GET/PUT (default presigner and s3v4)"):
    body = data(3, 70_000)
    for name, presigner in [("default", client()), ("s3v4", client(signature_version="s3v4"))]:
        key = f"presigned/{name}"
        put_url = presigner.generate_presigned_url("put_object", Params={"Bucket": B, "Key": key}, ExpiresIn=300)
        status, _, text = http("PUT", put_url, body)
        expect_eq(f"presigned PUT ({name})", (status, text), (200, b""))
        expect_eq("presigned PUT ETag", s3.head_object(Bucket=B, Key=key)["ETag"], f'"{md5(body)}"')
        get_url = presigner.generate_presigned_url("get_object", Params={"Bucket": B, "Key": key}, ExpiresIn=300)
        status, _, got = http("GET", get_url)
        expect_eq(f"presigned GET ({name})", (status, got), (200, body))
        # Flip one character of the signature.
        sig_at = get_url.index("Signature=") + len("Signature=")
        bad = get_url[:sig_at] + ("0" if get_url[sig_at] != "0" else "1") + get_url[sig_at + 1:]
        status, _, text = http("GET", bad)
        expect_eq(f"tampered URL status ({name})", status, 403)
        assert b"<Code>SignatureDoesNotMatch</Code>" in text, text

with lane.scenario("presigned POST (browser form upload with policy)"):
    body = data(4, 9 * MiB + 3)  # spans many reads: the boundary is found in a stream
    key = f"post/{uuid.uuid4()}.bin"
    post = s3.generate_presigned_post(
        B, key, Fields={"Content-Type": "image/png", "x-amz-meta-origin": "form"},
        Conditions=[{"Content-Type": "image/png"}, {"x-amz-meta-origin": "form"},
                    ["content-length-range", 1, 10 * MiB]], ExpiresIn=300)
    ctype, form = multipart_form.encode(post["fields"], "file", "upload.png", body)
    status, _, text = http("POST", post["url"], form, {"Content-Type": ctype})
    expect_eq("POST status", (status, text), (204, b""))
    got = s3.get_object(Bucket=B, Key=key)
    expect_eq("POST body", got["Body"].read(), body)
    expect_eq("POST content type", got["ContentType"], "image/png")
    expect_eq("POST metadata", got["Metadata"], {"origin": "form"})
    expect_eq("POST ETag", got["ETag"], f'"{md5(body)}"')
    # The policy limits the size: a larger file is refused.
    ctype, form = multipart_form.encode(post["fields"], "file", "upload.png", data(5, 11 * MiB))
    status, _, text = http("POST", post["url"], form, {"Content-Type": ctype})
    expect_eq("too large POST status", status, 400)
    assert b"<Code>EntityTooLarge</Code>" in text, text

with lane.scenario("presigned POST refusals and success_action_status 201"):
    def post_form(fields, body=b"x"):
        ctype, form = multipart_form.encode(fields, "file", "f.bin", body)
        return http("POST", post["url"], form, {"Content-Type": ctype})

    def refused(what, fields, status, code, words=""):
        got_status, _, text = post_form(fields)
        expect_eq(f"{what} status", got_status, status)
        assert f"<Code>{code}</Code>".encode() in text and words.encode() in text, (what, text)

    refused("condition failed", {**post["fields"], "Content-Type": "text/html"}, 403, "AccessDenied",
            "Policy Condition failed")
    refused("extra field", {**post["fields"], "x-amz-meta-extra": "1"}, 403, "AccessDenied", "Extra input fields")
    for signer in (s3, client(signature_version="s3v4")):
        signed = signer.generate_presigned_post(B, "post/tampered")
        name = "x-amz-signature" if "x-amz-signature" in signed["fields"] else "signature"
        sig = signed["fields"][name]
        refused(f"tampered {name}", {**signed["fields"], name: sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")},
                403, "SignatureDoesNotMatch")
    expired = s3.generate_presigned_post(B, "post/late", ExpiresIn=-60)
    ctype, form = multipart_form.encode(expired["fields"], "file", "f.bin", b"late")
    got_status, _, text = http("POST", expired["url"], form, {"Content-Type": ctype})
    assert got_status == 403 and b"Policy expired" in text, text
    created = s3.generate_presigned_post(B, "post/${filename}", Fields={"success_action_status": "201"},
                                         Conditions=[{"success_action_status": "201"}])
    ctype, form = multipart_form.encode(created["fields"], "file", "named.txt", b"named")
    got_status, headers, text = http("POST", created["url"], form, {"Content-Type": ctype})
    expect_eq("201 status", got_status, 201)
    assert b"<Key>post/named.txt</Key>" in text and md5(b"named").encode() in text, text
    expect_eq("${filename} key", s3.get_object(Bucket=B, Key="post/named.txt")["Body"].read(), b"named")
    for k in ("post/late", "post/tampered"):
        try:
            s3.head_object(Bucket=B, Key=k)
            raise AssertionError(f"refused POST stored {k}")
        except ClientError:
            pass

with lane.scenario("versioning: versions, delete marker, get by version id"):
    V = "boto3-versions"
    s3.create_bucket(Bucket=V)
    s3.put_bucket_versioning(Bucket=V, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=V, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=V, Key="doc", Body=b"two")["VersionId"]
    marker = s3.delete_object(Bucket=V, Key="doc")
    assert marker["DeleteMarker"], marker
    vs = s3.list_object_versions(Bucket=V)
    expect_eq("versions", [v["VersionId"] for v in vs["Versions"]], [v2, v1])
    expect_eq("markers", [m["VersionId"] for m in vs["DeleteMarkers"]], [marker["VersionId"]])
    expect_eq("old version", s3.get_object(Bucket=V, Key="doc", VersionId=v1)["Body"].read(), b"one")
    s3.delete_object(Bucket=V, Key="doc", VersionId=marker["VersionId"])
    expect_eq("undeleted", s3.get_object(Bucket=V, Key="doc")["Body"].read(), b"two")

if VIA != "direct":
    with lane.scenario("HTTPS uploads used aws-chunked with trailing checksums"):
        assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in payload_modes, payload_modes

lane.finish()
