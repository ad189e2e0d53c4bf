"""Writes botocore.txt: S3 requests as boto3 signs them, captured before they are sent.

Covers SigV4 and SigV2 ("s3"), path and virtual-host addressing, awkward keys, sub-resources
and presigned URLs. The before-send hook aborts every request, so no network is used.
"""
import boto3, botocore, re, sys
from botocore.config import Config
from urllib.parse import urlsplit

AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
class Captured(Exception): pass
out = []

def record(name, method, url, headers, bucket_from_host):
    parts = urlsplit(url)
    hs = [(k.lower(), v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()]
    # SDK bookkeeping headers are unsigned and vary per run (the user agent even names the
    # generating machine), so they are left out of the corpus.
    hs = [(k, v) for k, v in hs if k not in ("user-agent", "amz-sdk-invocation-id", "amz-sdk-request")]
    host = parts.netloc
    if not any(k == "host" for k, _ in hs):
        hs.append(("host", host))
    out.append((name, method, parts.path, parts.query, hs, bucket_from_host))

def client(sig, style):
    cfg = Config(signature_version=sig, s3={"addressing_style": style}, retries={"max_attempts": 1},
                 request_checksum_calculation="when_required")
    return boto3.client("s3", endpoint_url="http://localhost:9000", region_name="us-east-1",
                        aws_access_key_id=AK, aws_secret_access_key=SK, config=cfg)

KEYS = ["my key.txt", "a+b", "50% off", "x=1&y=2", "café/ünïcödé/日本/🎉.bin", "dir//./../file",
        "semi;colon:at@dollar$comma,", "brackets[]{}#?\"'<>~_-."]

def capture(c, style, name, call):
    def hook(request, **kw):
        # The bucket is in the Host header only when the client put it there.
        host = urlsplit(request.url).netloc
        record(name, request.method, request.url, request.headers,
               "bucket" if host.startswith("bucket.") else None)
        raise Captured()
    c.meta.events.register("before-send.s3", hook)
    try:
        call()
    except Captured:
        pass
    c.meta.events.unregister("before-send.s3", hook)

for sig in ["s3v4", "s3"]:
    for style in ["path", "virtual"]:
        try:
            c = client(sig, style)
        except Exception as e:
            print("skip", sig, e, file=sys.stderr); continue
        tag = f"{sig}-{style}"
        for i, key in enumerate(KEYS):
            capture(c, style, f"{tag}-put-{i}", lambda: c.put_object(Bucket="bucket", Key=key, Body=b"hello"))
            capture(c, style, f"{tag}-get-{i}", lambda: c.get_object(Bucket="bucket", Key=key,
                    ResponseContentDisposition='attachment; filename="é t+x.txt"', VersionId="3/L4kq+rm=="))
            capture(c, style, f"{tag}-part-{i}", lambda: c.upload_part(Bucket="bucket", Key=key, PartNumber=3,
                    UploadId="VXBsb2FkIElE+/=", Body=b"part"))
            capture(c, style, f"{tag}-copy-{i}", lambda: c.copy_object(Bucket="bucket", Key=key,
                    CopySource={"Bucket": "src", "Key": key}, MetadataDirective="REPLACE", Metadata={"m": "v  w"}))
        capture(c, style, f"{tag}-list", lambda: c.list_objects_v2(Bucket="bucket", Prefix="a b+c/é", Delimiter="/"))
        capture(c, style, f"{tag}-acl", lambda: c.get_bucket_acl(Bucket="bucket"))
        capture(c, style, f"{tag}-lifecycle", lambda: c.get_bucket_lifecycle_configuration(Bucket="bucket"))
        capture(c, style, f"{tag}-delete", lambda: c.delete_objects(Bucket="bucket",
                Delete={"Objects": [{"Key": "a"}]}))
        capture(c, style, f"{tag}-buckets", lambda: c.list_buckets())
        # Presigned URLs, as a browser or curl would then send them.
        for i, key in enumerate(KEYS):
            for op, params in [("get_object", {"ResponseContentType": "text/plain; charset=utf-8"}),
                               ("put_object", {})]:
                url = c.generate_presigned_url(op, Params={"Bucket": "bucket", "Key": key, **params}, ExpiresIn=3600)
                parts = urlsplit(url)
                out.append((f"{tag}-presign-{op}-{i}", "GET" if op == "get_object" else "PUT", parts.path,
                            parts.query, [("host", parts.netloc)],
                            "bucket" if parts.netloc.startswith("bucket.") else None))

# Over HTTPS, current SDKs stream uploads as aws-chunked with an unsigned checksum trailer.
c = boto3.client("s3", endpoint_url="https://localhost:9000", region_name="us-east-1",
                 aws_access_key_id=AK, aws_secret_access_key=SK,
                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                               request_checksum_calculation="when_supported"))
for i, key in enumerate(KEYS[:3]):
    capture(c, "path", f"s3v4-https-put-{i}", lambda: c.put_object(Bucket="bucket", Key=key, Body=b"hello"))
    capture(c, "path", f"s3v4-https-part-{i}", lambda: c.upload_part(Bucket="bucket", Key=key, PartNumber=1,
            UploadId="id", Body=b"part"))

with open(sys.argv[1], "w") as f:
    f.write("# Requests signed by botocore %s (boto3 %s) with the AWS example credentials.\n" % (botocore.__version__, boto3.__version__))
    f.write("# Regenerate with: python3 botocore_gen.py botocore.txt (nothing is sent anywhere).\n")
    for name, method, path, query, hs, bucket in out:
        f.write(f"case {name}\nmethod {method}\npath {path}\nquery {query}\n")
        if bucket: f.write(f"bucket {bucket}\n")
        for k, v in hs:
            assert "\n" not in v and "\t" not in v
            f.write(f"header {k}\t{v}\n")
        f.write("end\n")
print(len(out))
