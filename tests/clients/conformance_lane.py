"""boto3 (and plain HTTP where a client cannot say it) on the S3 behaviours
that real SDKs and the conformance suite rely on beyond the basic verbs: a
CompleteMultipartUpload retried after its response was lost, conditional
writes, GetObjectAttributes, reading a part, paginated ListBuckets, error
codes for bad checksums and presigned URLs, and header forms."""

import base64
import email.header
import hashlib
import socket
import threading
import urllib.parse

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

from lane import (ACCESS_KEY, CA_BUNDLE, ENDPOINT, REGION, SECRET_KEY, Lane, MiB, data, expect_eq, http,
                  multipart_etag, s3_error_code)

lane = Lane("conformance", f"boto3 {boto3.__version__} (botocore {botocore.__version__}) and plain HTTP")
session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                region_name=REGION)


def client(endpoint=ENDPOINT, **config):
    return session.client("s3", endpoint_url=endpoint, verify=CA_BUNDLE or True, config=Config(**config))


s3 = client()
B = "conformance"
s3.create_bucket(Bucket=B)


def refused(call, **kw):
    """(status, code) of a call that must fail."""
    try:
        call(**kw)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], s3_error_code(e)
    raise AssertionError(f"{call.__name__} succeeded")


class LoseFirstCompleteResponse:
    """A TCP relay in front of the node that forwards a request and drops
    the node's answer to the first CompleteMultipartUpload (it closes the
    client's connection instead), as a load balancer timing out would. The
    node has completed the upload; the SDK sees a broken connection and
    retries the same request."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self.completes = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.listener.accept()
            threading.Thread(target=self.relay, args=(c,), daemon=True).start()

    @staticmethod
    def read_message(sock, buf):
        """One HTTP message with a Content-Length body: (message, rest)."""
        while b"\r\n\r\n" not in buf:
            more = sock.recv(65536)
            if not more:
                return None, b""
            buf += more
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            rest += sock.recv(65536)
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def relay(self, c):
        up = socket.create_connection(self.target)
        buf = b""
        try:
            while True:
                request, buf = self.read_message(c, buf)
                if request is None:
                    return
                up.sendall(request)
                response, _ = self.read_message(up, b"")
                line = request.split(b"\r\n", 1)[0]
                if line.startswith(b"POST ") and b"uploadId=" in line:
                    self.completes += 1
                    if not self.dropped:
                        self.dropped += 1
                        return
                c.sendall(response)
        finally:
            c.close()
            up.close()


def upload_parts(key, bodies, **create):
    up = s3.create_multipart_upload(Bucket=B, Key=key, **create)
    parts = []
    for n, body in enumerate(bodies, 1):
        p = s3.upload_part(Bucket=B, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body,
                           **({"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create
                              else {}))
        part = {"ETag": p["ETag"], "PartNumber": n}
        for k in p:
            if k.startswith("Checksum") and k != "ChecksumType":
                part[k] = p[k]
        parts.append(part)
    return up["UploadId"], parts


with lane.scenario("CompleteMultipartUpload retried by the SDK after its response was lost"):
    u = urllib.parse.urlsplit(ENDPOINT)
    relay = LoseFirstCompleteResponse(u.hostname, u.port)
    retrying = client(f"{u.scheme}://127.0.0.1:{relay.port}", retries={"max_attempts": 3, "mode": "standard"})
    bodies = [data(10, 5 * MiB), data(11, 5 * MiB), data(12, 1234)]
    upload_id, parts = upload_parts("retried", bodies)
    done = retrying.complete_multipart_upload(Bucket=B, Key="retried", UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})
    expect_eq("requests the node completed", (relay.completes, relay.dropped), (2, 1))
    expect_eq("retries the SDK made", done["ResponseMetadata"]["RetryAttempts"], 1)
    whole = b"".join(bodies)
    expect_eq("etag after the retry", done["ETag"].strip('"'), multipart_etag(whole, 5 * MiB))
    expect_eq("bytes", s3.get_object(Bucket=B, Key="retried")["Body"].read(), whole)
    # Once more by hand, and with another part list: the first is answered
    # as before, the second finds the upload gone.
    again = s3.complete_multipart_upload(Bucket=B, Key="retried", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    expect_eq("etag of a repeated complete", again["ETag"], done["ETag"])
    expect_eq("other part list", refused(s3.complete_multipart_upload, Bucket=B, Key="retried", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts[:1]}), (404, "NoSuchUpload"))

with lane.scenario("a repeated Complete of a checksummed upload gives the same checksum"):
    upload_id, parts = upload_parts("sha", [data(13, 5 * MiB), data(14, 10)], ChecksumAlgorithm="SHA256")
    first = s3.complete_multipart_upload(Bucket=B, Key="sha", UploadId=upload_id, MultipartUpload={"Parts": parts})
    second = s3.complete_multipart_upload(Bucket=B, Key="sha", UploadId=upload_id, MultipartUpload={"Parts": parts})
    expect_eq("etag and checksum", (second["ETag"], second["ChecksumSHA256"]), (first["ETag"], first["ChecksumSHA256"]))
    assert first["ChecksumSHA256"].endswith("-2"), first["ChecksumSHA256"]

with lane.scenario("If-Match and If-None-Match on PutObject and CompleteMultipartUpload"):
    etag = s3.put_object(Bucket=B, Key="cond", Body=b"one", IfNoneMatch="*")["ETag"]
    expect_eq("If-None-Match * on a key that exists", refused(s3.put_object, Bucket=B, Key="cond", Body=b"x",
                                                              IfNoneMatch="*"), (412, "PreconditionFailed"))
    expect_eq("If-None-Match naming the ETag", refused(s3.put_object, Bucket=B, Key="cond", Body=b"x",
                                                       IfNoneMatch=etag), (412, "PreconditionFailed"))
    s3.put_object(Bucket=B, Key="cond", Body=b"two", IfNoneMatch='"another"')
    expect_eq("If-Match on a missing key", refused(s3.put_object, Bucket=B, Key="absent", Body=b"x", IfMatch="*"),
              (404, "NoSuchKey"))
    upload_id, parts = upload_parts("cond", [b"three"])
    expect_eq("Complete with a stale If-Match", refused(s3.complete_multipart_upload, Bucket=B, Key="cond",
                                                        UploadId=upload_id, MultipartUpload={"Parts": parts},
                                                        IfMatch=etag), (412, "PreconditionFailed"))
    current = s3.head_object(Bucket=B, Key="cond")["ETag"]
    expect_eq("Complete with If-None-Match *", refused(s3.complete_multipart_upload, Bucket=B, Key="cond",
                                                       UploadId=upload_id, MultipartUpload={"Parts": parts},
                                                       IfNoneMatch="*"), (412, "PreconditionFailed"))
    s3.complete_multipart_upload(Bucket=B, Key="cond", UploadId=upload_id, MultipartUpload={"Parts": parts},
                                 IfMatch=current)
    expect_eq("completed object", s3.get_object(Bucket=B, Key="cond")["Body"].read(), b"three")

with lane.scenario("GetObjectAttributes: ETag, checksum, size, storage class, parts page by page"):
    body = data(20, 1000)
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    put = s3.put_object(Bucket=B, Key="attrs", Body=body, ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(Bucket=B, Key="attrs",
                                 ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    expect_eq("single object", (a["ETag"], a["Checksum"], a["ObjectSize"], a["StorageClass"], "ObjectParts" in a),
              (put["ETag"].strip('"'), {"ChecksumSHA256": sha, "ChecksumType": "FULL_OBJECT"}, 1000, "STANDARD", False))
    bodies = [data(21, 5 * MiB), data(22, 5 * MiB), data(23, 77)]
    upload_id, parts = upload_parts("attrs-mp", bodies, ChecksumAlgorithm="SHA1")
    done = s3.complete_multipart_upload(Bucket=B, Key="attrs-mp", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    pages, marker = [], 0
    while True:
        a = s3.get_object_attributes(Bucket=B, Key="attrs-mp", ObjectAttributes=["ObjectParts", "ETag", "Checksum"],
                                     MaxParts=2, PartNumberMarker=marker)
        op = a["ObjectParts"]
        expect_eq("parts count", op["TotalPartsCount"], 3)
        pages.append([(p["PartNumber"], p["Size"], p["ChecksumSHA1"]) for p in op["Parts"]])
        if not op["IsTruncated"]:
            break
        marker = op["NextPartNumberMarker"]
    expect_eq("parts, two per page", pages,
              [[(1, 5 * MiB, parts[0]["ChecksumSHA1"]), (2, 5 * MiB, parts[1]["ChecksumSHA1"])],
               [(3, 77, parts[2]["ChecksumSHA1"])]])
    expect_eq("multipart etag and checksum", (a["ETag"], a["Checksum"]["ChecksumSHA1"], a["Checksum"]["ChecksumType"]),
              (done["ETag"].strip('"'), done["ChecksumSHA1"], "COMPOSITE"))
    # Part 2 read alone carries that part's checksum; a part the object
    # does not have is 400 InvalidPart.
    p2 = s3.get_object(Bucket=B, Key="attrs-mp", PartNumber=2, ChecksumMode="ENABLED")
    expect_eq("part 2", (p2["Body"].read() == bodies[1], p2["PartsCount"], p2["ChecksumSHA1"]),
              (True, 3, parts[1]["ChecksumSHA1"]))
    expect_eq("part 4 of 3", refused(s3.get_object, Bucket=B, Key="attrs-mp", PartNumber=4), (400, "InvalidPart"))
    # By version id, in a versioned bucket.
    s3.create_bucket(Bucket="conformance-v")
    s3.put_bucket_versioning(Bucket="conformance-v", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="conformance-v", Key="k", Body=b"first")
    s3.put_object(Bucket="conformance-v", Key="k", Body=b"second!")
    a = s3.get_object_attributes(Bucket="conformance-v", Key="k", VersionId=v1["VersionId"],
                                 ObjectAttributes=["ObjectSize"])
    expect_eq("old version", (a["VersionId"], a["ObjectSize"]), (v1["VersionId"], 5))
    expect_eq("no attribute named", refused(s3.get_object_attributes, Bucket=B, Key="attrs",
                                            ObjectAttributes=["Nonsense"]), (400, "InvalidArgument"))

with lane.scenario("ListBuckets page by page; re-creating an owned bucket"):
    for name in ["conformance-p1", "conformance-p2", "conformance-p3"]:
        s3.create_bucket(Bucket=name)
    # us-east-1 answers CreateBucket of a bucket its caller owns with 200.
    s3.create_bucket(Bucket="conformance-p1")
    names, token = [], None
    while True:
        page = s3.list_buckets(MaxBuckets=2, Prefix="conformance-p", **({"ContinuationToken": token} if token else {}))
        names.append([b["Name"] for b in page["Buckets"]])
        token = page.get("ContinuationToken")
        if not token:
            break
    expect_eq("pages", names, [["conformance-p1", "conformance-p2"], ["conformance-p3"]])

with lane.scenario("checksum errors: a wrong value is BadDigest, a malformed one InvalidRequest"):
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    expect_eq("wrong sha256", refused(s3.put_object, Bucket=B, Key="bad", Body=b"body", ChecksumSHA256=wrong),
              (400, "BadDigest"))
    expect_eq("malformed sha256", refused(s3.put_object, Bucket=B, Key="bad", Body=b"body", ChecksumSHA256="bad"),
              (400, "InvalidRequest"))
    upload_id, parts = upload_parts("bad-mp", [b"part"], ChecksumAlgorithm="SHA256")
    expect_eq("Complete stating a wrong whole-object checksum",
              refused(s3.complete_multipart_upload, Bucket=B, Key="bad-mp", UploadId=upload_id,
                      MultipartUpload={"Parts": parts}, ChecksumSHA256=wrong + "-1"), (400, "BadDigest"))

with lane.scenario("non-ASCII metadata comes back RFC 2047-encoded"):
    def utf8_meta(params, **_):
        params["headers"]["x-amz-meta-greeting"] = "Hello Worldé"

    raw = client()
    raw.meta.events.register("before-call.s3.PutObject", utf8_meta)
    raw.put_object(Bucket=B, Key="meta", Body=b"m")
    got = s3.head_object(Bucket=B, Key="meta")["Metadata"]["greeting"]
    assert got.startswith("=?UTF-8?B?"), got
    text, charset = email.header.decode_header(got)[0]
    expect_eq("decoded", text.decode(charset), "Hello Worldé")

with lane.scenario("header forms: Content-Encoding kept as sent, V1 Prefix echoed raw"):
    s3.put_object(Bucket=B, Key="enc", Body=b"e", ContentEncoding="deflate, gzip")
    expect_eq("content-encoding", s3.head_object(Bucket=B, Key="enc")["ContentEncoding"], "deflate, gzip")
    s3.put_object(Bucket=B, Key="a b/c", Body=b"x")
    v1 = s3.list_objects(Bucket=B, Prefix="\n", EncodingType="url")
    expect_eq("v1 prefix", v1["Prefix"], "\n")
    v1 = s3.list_objects(Bucket=B, Prefix="a", Delimiter="/", EncodingType="url")
    # A space is form-encoded, as AWS answers (FIELD_NOTES B7).
    expect_eq("common prefix", [p["Prefix"] for p in v1["CommonPrefixes"]], ["a+b/"])

with lane.scenario("presigned URL valid for 0 seconds; preflight and anonymous answers"):
    s3.put_object(Bucket=B, Key="p", Body=b"p")
    v4 = client(signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "p"}, ExpiresIn=0)
    assert "X-Amz-Expires=0" in url, url
    status, _, body = http("GET", url)
    expect_eq("expires in 0", (status, b"<Code>AccessDenied</Code>" in body), (403, True))
    url = v4.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "p"}, ExpiresIn=100000)
    expect_eq("presigned GET", http("GET", url)[0], 200)
    expect_eq("OPTIONS without Origin", http("OPTIONS", url)[0], 400)
    status, _, body = http("OPTIONS", url, headers={"Origin": "http://example", "Access-Control-Request-Method": "GET"})
    expect_eq("preflight for a bucket without CORS", (status, b"AccessForbidden" in body), (403, True))
    status, _, body = http("GET", f"{ENDPOINT}/conformance-gone/k")
    expect_eq("anonymous, missing bucket", (status, b"NoSuchBucket" in body), (404, True))
    status, _, body = http("GET", f"{ENDPOINT}/{B}/p")
    expect_eq("anonymous, existing bucket", (status, b"AccessDenied" in body), (403, True))

lane.finish()
