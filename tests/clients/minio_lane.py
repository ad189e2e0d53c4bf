"""minio-py (the MinIO Python SDK) against a node, directly or through the
TLS proxy: buckets, metadata, ranges, multipart fput/fget, server-side copy,
listings, bulk delete, presigned URLs and versioning."""

import io
import urllib.parse
from datetime import timedelta

import minio
import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, REPLACE, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.versioningconfig import VersioningConfig

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, Lane, MiB, data, expect_eq, http, md5,
                  multipart_etag, read_file, write_file)

lane = Lane("minio-py", minio.__version__)

url = urllib.parse.urlsplit(ENDPOINT)
http_client = None
if CA_BUNDLE:
    http_client = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=CA_BUNDLE)
mc = Minio(url.netloc, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=url.scheme == "https",
           region=REGION, http_client=http_client)


def get_bytes(bucket, key, **kw):
    resp = mc.get_object(bucket, key, **kw)
    try:
        return resp.read(), resp.headers
    finally:
        resp.close()
        resp.release_conn()


def user_meta(headers):
    """x-amz-meta-* headers, prefix stripped, names lower-cased."""
    return {k.lower()[len("x-amz-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")}


B = "minio-lane"

with lane.scenario("make_bucket/bucket_exists/list_buckets"):
    expect_eq("exists before", mc.bucket_exists(B), False)
    mc.make_bucket(B)
    expect_eq("exists after", mc.bucket_exists(B), True)
    names = [b.name for b in mc.list_buckets()]
    assert B in names, names
    # A second make_bucket by the owner: 200 in us-east-1 (AWS's legacy rule).
    mc.make_bucket(B)

with lane.scenario("put_object with metadata and content type, stat_object/get_object"):
    body = data(1, 2 * MiB + 11)
    put = mc.put_object(B, "meta/a b+c.bin", io.BytesIO(body), len(body), content_type="application/x-minio",
                        metadata={"owner": "lane", "x-amz-meta-Mixed-Case": "v"})
    expect_eq("put etag", put.etag, md5(body))
    st = mc.stat_object(B, "meta/a b+c.bin")
    expect_eq("stat size", st.size, len(body))
    expect_eq("stat etag", st.etag, md5(body))
    expect_eq("stat content type", st.content_type, "application/x-minio")
    expect_eq("stat metadata", user_meta(st.metadata), {"owner": "lane", "mixed-case": "v"})
    got, headers = get_bytes(B, "meta/a b+c.bin")
    expect_eq("get body", got, body)
    expect_eq("get etag", headers.get("etag"), f'"{md5(body)}"')
    expect_eq("get content type", headers.get("content-type"), "application/x-minio")
    expect_eq("get metadata", user_meta(headers), {"owner": "lane", "mixed-case": "v"})

with lane.scenario("get_object with offset/length (ranges)"):
    got, headers = get_bytes(B, "meta/a b+c.bin", offset=1000, length=4096)
    expect_eq("range body", got, body[1000:5096])
    expect_eq("content-range", headers.get("content-range"), f"bytes 1000-5095/{len(body)}")
    got, _ = get_bytes(B, "meta/a b+c.bin", offset=len(body) - 10)
    expect_eq("open-ended range", got, body[-10:])

with lane.scenario("fput_object multipart (25 MiB + 3, 5 MiB parts) and fget_object"):
    big = data(2, 25 * MiB + 3)
    src = write_file("minio/big.bin", big)
    put = mc.fput_object(B, "big/file.bin", src, content_type="application/x-big", metadata={"kind": "big"},
                         part_size=5 * MiB)
    want = multipart_etag(big, 5 * MiB)
    expect_eq("fput etag", put.etag, want)
    st = mc.stat_object(B, "big/file.bin")
    expect_eq("stat multipart etag", st.etag, want)
    expect_eq("stat multipart size", st.size, len(big))
    expect_eq("multipart metadata", user_meta(st.metadata), {"kind": "big"})
    expect_eq("multipart content type", st.content_type, "application/x-big")
    dst = write_file("minio/big.back", b"")
    mc.fget_object(B, "big/file.bin", dst)
    expect_eq("fget body", read_file(dst), big)
    got, _ = get_bytes(B, "big/file.bin", offset=5 * MiB - 2, length=4)
    expect_eq("range across parts", got, big[5 * MiB - 2:5 * MiB + 2])

with lane.scenario("copy_object with metadata replaced"):
    r = mc.copy_object(B, "copy/a", CopySource(B, "meta/a b+c.bin"), metadata={"new": "1", "Content-Type": "text/plain"},
                       metadata_directive=REPLACE)
    expect_eq("copy etag", r.etag, md5(body))
    st = mc.stat_object(B, "copy/a")
    expect_eq("copied metadata", user_meta(st.metadata), {"new": "1"})
    expect_eq("copied content type", st.content_type, "text/plain")
    expect_eq("copied etag", st.etag, md5(body))
    got, _ = get_bytes(B, "copy/a")
    expect_eq("copied body", got, body)
    # Without a directive the metadata is copied along.
    mc.copy_object(B, "copy/b", CopySource(B, "copy/a"))
    st = mc.stat_object(B, "copy/b")
    expect_eq("copied-along metadata", user_meta(st.metadata), {"new": "1"})
    expect_eq("copied-along content type", st.content_type, "text/plain")

with lane.scenario("list_objects recursive and non-recursive (120 keys)"):
    keys = sorted(f"list/{i % 6}/{i:04d}" for i in range(114)) + [f"list/top{i}" for i in range(6)]
    keys.sort()
    for k in keys:
        mc.put_object(B, k, io.BytesIO(k.encode()), len(k))
    listed = list(mc.list_objects(B, prefix="list/", recursive=True))
    expect_eq("recursive keys", [o.object_name for o in listed], keys)
    expect_eq("recursive sizes", [o.size for o in listed], [len(k) for k in keys])
    expect_eq("recursive etags", [o.etag for o in listed], [md5(k.encode()) for k in keys])
    top = list(mc.list_objects(B, prefix="list/"))
    # minio-py yields a page's Contents first, then its CommonPrefixes.
    expect_eq("non-recursive objects", [o.object_name for o in top if not o.is_dir],
              [f"list/top{i}" for i in range(6)])
    expect_eq("non-recursive prefixes", [o.object_name for o in top if o.is_dir], [f"list/{i}/" for i in range(6)])
    v1 = list(mc.list_objects(B, prefix="list/", recursive=True, use_api_v1=True))
    expect_eq("v1 keys", [o.object_name for o in v1], keys)
    after = list(mc.list_objects(B, prefix="list/", recursive=True, start_after="list/3/"))
    expect_eq("start_after", [o.object_name for o in after], [k for k in keys if k > "list/3/"])

with lane.scenario("remove_objects (bulk delete of 120 keys)"):
    errors = list(mc.remove_objects(B, [DeleteObject(k) for k in keys]))
    expect_eq("delete errors", [(e.code, e.name) for e in errors], [])
    expect_eq("left after delete", list(mc.list_objects(B, prefix="list/", recursive=True)), [])

with lane.scenario("presigned GET/PUT URLs"):
    body = data(3, 70_000)
    put_url = mc.presigned_put_object(B, "presigned/obj", expires=timedelta(minutes=5))
    status, _, text = http("PUT", put_url, body)
    expect_eq("presigned PUT", (status, text), (200, b""))
    expect_eq("presigned PUT etag", mc.stat_object(B, "presigned/obj").etag, md5(body))
    get_url = mc.presigned_get_object(B, "presigned/obj", expires=timedelta(minutes=5))
    status, headers, got = http("GET", get_url)
    expect_eq("presigned GET", (status, got), (200, body))
    expect_eq("presigned GET etag", headers.get("etag"), f'"{md5(body)}"')
    sig_at = get_url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    bad = get_url[:sig_at] + ("0" if get_url[sig_at] != "0" else "1") + get_url[sig_at + 1:]
    status, _, text = http("GET", bad)
    expect_eq("tampered URL status", status, 403)
    assert b"<Code>SignatureDoesNotMatch</Code>" in text, text

with lane.scenario("versioning: two versions, list with versions, get by version id"):
    V = "minio-versions"
    mc.make_bucket(V)
    mc.set_bucket_versioning(V, VersioningConfig(ENABLED))
    expect_eq("versioning status", mc.get_bucket_versioning(V).status, ENABLED)
    first = mc.put_object(V, "doc", io.BytesIO(b"one"), 3)
    second = mc.put_object(V, "doc", io.BytesIO(b"second"), 6)
    assert first.version_id and second.version_id and first.version_id != second.version_id, \
        (first.version_id, second.version_id)
    vs = list(mc.list_objects(V, include_version=True))
    expect_eq("versions", [(o.object_name, o.version_id, o.size, o.etag) for o in vs],
              [("doc", second.version_id, 6, md5(b"second")), ("doc", first.version_id, 3, md5(b"one"))])
    expect_eq("is latest", [o.is_latest for o in vs], ["true", "false"])
    got, headers = get_bytes(V, "doc", version_id=first.version_id)
    expect_eq("first version", got, b"one")
    expect_eq("first version id", headers.get("x-amz-version-id"), first.version_id)
    got, _ = get_bytes(V, "doc")
    expect_eq("latest version", got, b"second")
    expect_eq("stat by version", mc.stat_object(V, "doc", version_id=first.version_id).etag, md5(b"one"))

with lane.scenario("stat_object on a missing key raises NoSuchKey"):
    try:
        mc.stat_object(B, "missing")
        raise AssertionError("stat_object of a missing key succeeded")
    except S3Error as e:
        expect_eq("missing key code", e.code, "NoSuchKey")
    try:
        get_bytes(B, "missing")
        raise AssertionError("get_object of a missing key succeeded")
    except S3Error as e:
        expect_eq("missing key code (GET)", e.code, "NoSuchKey")
    try:
        # GET, not HEAD: minio-py names a bodiless 404 on an object NoSuchKey itself.
        get_bytes("no-such-bucket-here", "x")
        raise AssertionError("get_object in a missing bucket succeeded")
    except S3Error as e:
        expect_eq("missing bucket code", e.code, "NoSuchBucket")

lane.finish()
