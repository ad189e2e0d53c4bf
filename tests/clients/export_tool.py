"""boto3's side of tests/export.rs.

    export_tool.py fill          fills a node with what an export must carry
    export_tool.py more SEED     one more version of a few keys (after a restart)
    export_tool.py dump FILE     writes everything boto3 can see of the node to FILE (JSON)

The test dumps a node before it is exported and the node the export was
imported into, and compares the two dumps: every bucket, version, delete
marker, ETag, time, metadata, checksum, tag set and body, as boto3 reads
them.
"""

import hashlib
import json
import random
import sys

import boto3
from botocore.config import Config

from lane import ACCESS_KEY, ENDPOINT, REGION, SECRET_KEY

MiB = 1 << 20

s3 = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                  region_name=REGION, config=Config(s3={"addressing_style": "path"},
                                                    retries={"max_attempts": 1}))

# Keys that are not plain file names: a key that is also a "directory" of
# others, dot segments, an empty segment, a trailing slash, percent signs,
# unicode, spaces, and a key of 1,000 bytes.
ODD_KEYS = ["a", "a/b", "a/b/c", "../x", "./y", "dir/", "dir//z", "unicodé/日本語/ключ.txt",
            "sp ace+plus", "pct%2F%obj", "long/" + "k" * 990 + "/end"]


def body(seed, size):
    return random.Random(seed).randbytes(size)


def fill():
    s3.create_bucket(Bucket="ver")
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket="ver", Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    for i, key in enumerate(ODD_KEYS):
        s3.put_object(Bucket="ver", Key=key, Body=body(i, 100 + i * 37))
    # Three versions of "a" with different metadata; tags on two.
    s3.put_object(Bucket="ver", Key="a", Body=body(100, 70_000), ContentType="text/plain",
                  Metadata={"color": "blue", "n": "1"}, Tagging="k1=v1&k2=v2")
    s3.put_object(Bucket="ver", Key="a", Body=body(101, 2_000_000), ContentType="application/x-thing",
                  ContentEncoding="identity", ContentDisposition='attachment; filename="a.bin"',
                  ContentLanguage="de", CacheControl="max-age=60", Expires="Wed, 21 Oct 2037 07:28:00 GMT",
                  Metadata={"color": "red"}, Tagging="only=one")
    # A deleted key: a delete marker in front of a version.
    s3.put_object(Bucket="ver", Key="gone", Body=b"soon deleted")
    s3.delete_object(Bucket="ver", Key="gone")
    # Full-object and composite (multipart) checksums.
    s3.put_object(Bucket="ver", Key="sha", Body=body(7, 123_456), ChecksumAlgorithm="SHA256")
    up = s3.create_multipart_upload(Bucket="ver", Key="mp", ChecksumAlgorithm="CRC32", ContentType="video/mp4",
                                    Metadata={"parts": "3"})
    parts = []
    for n, size in [(1, 5 * MiB), (2, 5 * MiB), (3, MiB + 17)]:
        r = s3.upload_part(Bucket="ver", Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=body(50 + n, size),
                           ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    s3.complete_multipart_upload(Bucket="ver", Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    # An unversioned bucket with a CORS rule; its objects have null versions.
    s3.create_bucket(Bucket="plain")
    s3.put_bucket_cors(Bucket="plain", CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["https://app.example"], "ExposeHeaders": ["ETag"]}]})
    for i, key in enumerate(["a", "a/b", "empty", "big"]):
        s3.put_object(Bucket="plain", Key=key, Body=b"" if key == "empty" else body(200 + i, 3 * MiB if key == "big"
                                                                                     else 999))
    # A suspended bucket: versions then a null version on top.
    s3.create_bucket(Bucket="susp")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="susp", Key="k", Body=b"versioned one")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket="susp", Key="k", Body=b"the null version")


def more(seed):
    for key in ["a", "a/b", "late"]:
        s3.put_object(Bucket="ver", Key=key, Body=body(seed + len(key), 5000 + seed), Metadata={"seed": str(seed)})
    s3.delete_object(Bucket="ver", Key="../x")


def versions(bucket):
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.append(dict(v, marker=False))
        for m in page.get("DeleteMarkers", []):
            out.append(dict(m, marker=True))
    return out


def describe(bucket, v):
    d = {"key": v["Key"], "version_id": v["VersionId"], "is_latest": v["IsLatest"], "marker": v["marker"],
         "last_modified": v["LastModified"].isoformat()}
    if v["marker"]:
        return d
    d.update(etag=v["ETag"], size=v["Size"], storage_class=v.get("StorageClass"))
    h = s3.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"], ChecksumMode="ENABLED")
    headers = h["ResponseMetadata"]["HTTPHeaders"]
    for name in ["content-type", "content-encoding", "content-disposition", "content-language", "cache-control",
                 "expires", "last-modified", "etag", "x-amz-tagging-count", "x-amz-checksum-type"]:
        d[name] = headers.get(name)
    d["checksums"] = {k: h[k] for k in h if k.startswith("Checksum")}
    d["metadata"] = h["Metadata"]
    g = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    data = g["Body"].read()
    d["md5"] = hashlib.md5(data).hexdigest()
    d["got_size"] = len(data)
    d["tags"] = s3.get_object_tagging(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["TagSet"]
    if d["etag"].endswith('-3"'):
        d["part2"] = s3.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"], PartNumber=2)[
            "ContentLength"]
    return d


def bucket_config(call, **kw):
    try:
        r = call(**kw)
        r.pop("ResponseMetadata", None)
        return r
    except s3.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def dump(path):
    out = {}
    for b in s3.list_buckets()["Buckets"]:
        name = b["Name"]
        out[name] = {
            "created": b["CreationDate"].isoformat(),
            "versioning": s3.get_bucket_versioning(Bucket=name).get("Status"),
            "cors": bucket_config(s3.get_bucket_cors, Bucket=name),
            "tagging": bucket_config(s3.get_bucket_tagging, Bucket=name),
            "versions": [describe(name, v) for v in versions(name)],
        }
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
    print(f"dumped {sum(len(b['versions']) for b in out.values())} versions of {len(out)} buckets")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fill":
        fill()
    elif cmd == "more":
        more(int(sys.argv[2]))
    elif cmd == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")
