"""CORS as clients set it and browsers use it: boto3, aws-cli and s3cmd put,
read and delete a bucket's rules (with AWS's validation errors), and plain
HTTP sends what a browser sends: preflights (OPTIONS) that match a rule or
do not, and actual requests with Origin (GET, PUT, presigned PUT, a POST
form, errors) whose answers must carry the matching rule's headers."""

import base64
import hashlib
import json

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from lane import ACCESS_KEY, ENDPOINT, REGION, SECRET_KEY, Lane, aws, expect_eq, http, s3cmd, write_file

lane = Lane("cors", f"boto3 {boto3.__version__}, aws-cli, s3cmd and plain HTTP")
s3 = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                           region_name=REGION).client("s3", endpoint_url=ENDPOINT,
                                                      config=Config(s3={"addressing_style": "path"}))
B = "cors-web"
APP = "http://app.example.com"
s3.create_bucket(Bucket=B)
s3.put_object(Bucket=B, Key="page.txt", Body=b"hello", Metadata={"note": "n"})

RULES = [
    {"ID": "app", "AllowedOrigins": [APP, "https://*.example.org"], "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag", "x-amz-version-id"],
     "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]


def code_of(call, **kw):
    try:
        call(**kw)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, None


def signed(method, url, body, headers):
    """A request signed with SigV4 as sent, body and all."""
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    return http(method, url, body=body, headers=dict(req.headers.items()))


def preflight(path, origin, method, headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return http("OPTIONS", f"{ENDPOINT}{path}", headers=h)


def cors_of(headers):
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


with lane.scenario("boto3 put/get/delete bucket CORS, rules back in order"):
    expect_eq("before any", code_of(s3.get_bucket_cors, Bucket=B), (404, "NoSuchCORSConfiguration"))
    s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": RULES})
    expect_eq("rules", s3.get_bucket_cors(Bucket=B)["CORSRules"], RULES)
    s3.delete_bucket_cors(Bucket=B)
    expect_eq("after delete", code_of(s3.get_bucket_cors, Bucket=B), (404, "NoSuchCORSConfiguration"))
    s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": RULES})

with lane.scenario("invalid configurations refused with AWS's errors"):
    def refused(rule):
        return code_of(s3.put_bucket_cors, Bucket="cors-web", CORSConfiguration={"CORSRules": [rule]})
    base = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    expect_eq("PATCH", refused(dict(base, AllowedMethods=["PATCH"])), (400, "InvalidRequest"))
    expect_eq("two wildcards", refused(dict(base, AllowedOrigins=["*.a.*"])), (400, "InvalidRequest"))
    expect_eq("header wildcards", refused(dict(base, AllowedHeaders=["x-*-*"])), (400, "InvalidRequest"))
    expect_eq("expose wildcard", refused(dict(base, ExposeHeaders=["*"])), (400, "InvalidRequest"))
    # boto3 will not send a rule without an origin: botocore's signer signs it raw.
    url = f"{ENDPOINT}/{B}?cors"
    doc = b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>"
    md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
    status, _, body = signed("PUT", url, doc, {"Content-MD5": md5})
    expect_eq("no origin", (status, b"<Code>MalformedXML</Code>" in body), (400, True))
    status, _, body = signed("PUT", url, doc, {})
    expect_eq("no Content-MD5", (status, b"<Code>InvalidRequest</Code>" in body), (400, True))
    expect_eq("long id", refused(dict(base, ID="i" * 256)), (400, "InvalidArgument"))
    expect_eq("101 rules", code_of(s3.put_bucket_cors, Bucket=B, CORSConfiguration={"CORSRules": [base] * 101}),
              (400, "InvalidRequest"))
    expect_eq("missing bucket", code_of(s3.get_bucket_cors, Bucket="cors-none"), (404, "NoSuchBucket"))
    expect_eq("rules unchanged", s3.get_bucket_cors(Bucket=B)["CORSRules"], RULES)

with lane.scenario("aws-cli s3api put-bucket-cors / get-bucket-cors / delete-bucket-cors"):
    s3.create_bucket(Bucket="cors-cli")
    conf = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["PUT", "DELETE"], "MaxAgeSeconds": 5}]}
    path = write_file("cors.json", json.dumps(conf).encode())
    aws("s3api", "put-bucket-cors", "--bucket", "cors-cli", "--cors-configuration", f"file://{path}")
    got = json.loads(aws("s3api", "get-bucket-cors", "--bucket", "cors-cli"))
    expect_eq("rules", got["CORSRules"], conf["CORSRules"])
    status, headers, _ = preflight("/cors-cli/k", APP, "DELETE")
    expect_eq("preflight", (status, headers.get("access-control-max-age")), (200, "5"))
    aws("s3api", "delete-bucket-cors", "--bucket", "cors-cli")
    expect_eq("after delete", preflight("/cors-cli/k", APP, "DELETE")[0], 403)

with lane.scenario("s3cmd setcors, info, delcors"):
    s3.create_bucket(Bucket="cors-s3cmd")
    xml = ("<CORSConfiguration><CORSRule><AllowedOrigin>http://s3cmd.example</AllowedOrigin>"
           "<AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader></CORSRule></CORSConfiguration>")
    s3cmd("setcors", write_file("cors.xml", xml.encode()), "s3://cors-s3cmd")
    info = s3cmd("info", "s3://cors-s3cmd")
    assert "http://s3cmd.example" in info, info
    status, headers, _ = preflight("/cors-s3cmd/x", "http://s3cmd.example", "GET", "Authorization, X-Custom")
    expect_eq("preflight with any header", (status, headers.get("access-control-allow-headers")),
              (200, "authorization, x-custom"))
    s3cmd("delcors", "s3://cors-s3cmd")
    expect_eq("after delcors", code_of(s3.get_bucket_cors, Bucket="cors-s3cmd"), (404, "NoSuchCORSConfiguration"))

with lane.scenario("preflight: the first rule allowing origin, method and headers answers"):
    status, headers, _ = preflight(f"/{B}/up/file.bin", APP, "PUT", "Content-Type, X-Amz-Meta-Who")
    expect_eq("allowed", (status, cors_of(headers)), (200, {
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, PUT, POST, HEAD",
        "access-control-allow-headers": "content-type, x-amz-meta-who",
        "access-control-expose-headers": "ETag, x-amz-version-id",
        "access-control-max-age": "600",
    }))
    assert "Origin" in headers.get("vary", ""), headers
    status, headers, _ = preflight(f"/{B}", "https://sub.example.org", "POST")
    expect_eq("wildcard origin", (status, headers.get("access-control-allow-origin")), (200, "https://sub.example.org"))
    status, headers, _ = preflight(f"/{B}/k", "http://elsewhere.test", "GET")
    expect_eq("the * rule", (status, headers.get("access-control-allow-origin"),
                             headers.get("access-control-allow-credentials")), (200, "*", None))
    status, headers, body = preflight(f"/{B}/k", "http://elsewhere.test", "PUT")
    expect_eq("no rule for PUT", (status, b"<Code>AccessForbidden</Code>" in body, cors_of(headers)), (403, True, {}))
    assert b"This CORS request is not allowed" in body, body
    expect_eq("header not allowed", preflight(f"/{B}/k", APP, "PUT", "x-other")[0], 403)
    expect_eq("DELETE not allowed", preflight(f"/{B}/k", APP, "DELETE")[0], 403)
    expect_eq("no method", http("OPTIONS", f"{ENDPOINT}/{B}/k", headers={"Origin": APP})[0], 400)
    expect_eq("missing bucket", preflight("/cors-none/k", APP, "GET")[0], 404)

with lane.scenario("actual requests with Origin carry the rule's headers, errors too"):
    status, headers, body = http("GET", s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "page.txt"}),
                                 headers={"Origin": APP})
    expect_eq("presigned GET", (status, body, headers.get("access-control-allow-origin"),
                                headers.get("access-control-expose-headers")), (200, b"hello", APP,
                                                                                "ETag, x-amz-version-id"))
    url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "up/pre.txt"})
    status, headers, _ = http("PUT", url, body=b"from a page", headers={"Origin": APP})
    expect_eq("presigned PUT", (status, headers.get("access-control-allow-origin")), (200, APP))
    expect_eq("stored", s3.get_object(Bucket=B, Key="up/pre.txt")["Body"].read(), b"from a page")
    status, headers, _ = http("GET", f"{ENDPOINT}/{B}/page.txt", headers={"Origin": "http://elsewhere.test"})
    expect_eq("anonymous GET refused, still CORS", (status, headers.get("access-control-allow-origin")), (403, "*"))
    status, headers, _ = http("PUT", f"{ENDPOINT}/{B}/x", body=b"x", headers={"Origin": "http://elsewhere.test"})
    expect_eq("no rule for PUT", (status, cors_of(headers)), (403, {}))
    status, headers, _ = http("GET", f"{ENDPOINT}/{B}/page.txt")
    expect_eq("no Origin, no CORS", (status, cors_of(headers)), (403, {}))
    post = s3.generate_presigned_post(B, "up/form.txt", Fields={"success_action_status": "201"},
                                      Conditions=[{"success_action_status": "201"}])
    boundary = "----kaligoncors"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in
             post["fields"].items()]
    form = ("".join(parts) + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nform bytes\r\n--{boundary}--\r\n").encode()
    status, headers, body = http("POST", post["url"], body=form, headers={
        "Origin": APP, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    expect_eq("POST form", (status, headers.get("access-control-allow-origin"), b"<ETag>" in body), (201, APP, True))
    expect_eq("stored", s3.get_object(Bucket=B, Key="up/form.txt")["Body"].read(), b"form bytes")

with lane.scenario("a bucket without CORS refuses preflights and adds nothing"):
    s3.create_bucket(Bucket="cors-none-set")
    status, headers, body = preflight("/cors-none-set/k", APP, "GET")
    expect_eq("preflight", (status, b"CORS is not enabled for this bucket" in body, cors_of(headers)), (403, True, {}))
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "cors-none-set", "Key": "k"})
    status, headers, _ = http("PUT", url, body=b"k", headers={"Origin": APP})
    expect_eq("PUT stored, no CORS headers", (status, cors_of(headers)), (200, {}))

lane.finish()
