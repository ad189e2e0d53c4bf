"""Access control as clients use it: canned ACLs from aws-cli and boto3,
explicit grants (XML and x-amz-grant-* headers, by canonical id and by
e-mail), object ACLs by version, bucket policies (principals, prefixes,
aws:SourceIp), Public Access Block, Object Ownership, s3cmd's setacl/info,
and anonymous reads and form uploads over plain HTTP. The node runs with a
second user (alt) from a --users file, with its own canonical id and
display name."""

import json
import os
import subprocess
import sys

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from lane import ENDPOINT, REGION, WORK, Lane, data, expect_eq, http, write_file

ACCESS_KEY = os.environ["KALIGON_ACCESS_KEY"]
SECRET_KEY = os.environ["KALIGON_SECRET_KEY"]
ALT_KEY = os.environ["KALIGON_ALT_ACCESS_KEY"]
ALT_SECRET = os.environ["KALIGON_ALT_SECRET_KEY"]
ALT_ID = os.environ["KALIGON_ALT_CANONICAL_ID"]
ALT_NAME = os.environ["KALIGON_ALT_DISPLAY_NAME"]
ALT_EMAIL = os.environ["KALIGON_ALT_EMAIL"]

lane = Lane("access", f"boto3 {boto3.__version__}, aws-cli, s3cmd and plain HTTP")


def client(key, secret):
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION).client(
        "s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"}))


main = client(ACCESS_KEY, SECRET_KEY)
alt = client(ALT_KEY, ALT_SECRET)
anon = boto3.session.Session(region_name=REGION).client(
    "s3", endpoint_url=ENDPOINT, config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}))
VENV_BIN = os.path.dirname(sys.executable)


def code_of(call, **kw):
    try:
        call(**kw)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, None


def denied(what, call, **kw):
    expect_eq(what, code_of(call, **kw), (403, "AccessDenied"))


def anon_get(bucket, key, query=""):
    status, _, body = http("GET", f"{ENDPOINT}/{bucket}/{key}{query}")
    return status, body


def aws(*args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([os.path.join(VENV_BIN, "aws"), "--endpoint-url", ENDPOINT, *args],
                         env=env, capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def grants_of(acl):
    """(grantee, permission) pairs: canonical ids, group URIs."""
    out = []
    for g in acl["Grants"]:
        who = g["Grantee"].get("ID") or g["Grantee"].get("URI")
        out.append((who, g["Permission"]))
    return sorted(out)


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
MAIN_ID = main.list_buckets()["Owner"]["ID"]

with lane.scenario("identities: canonical ids and display names from the users file"):
    expect_eq("main id is 64 hex digits", len(MAIN_ID) == 64 and int(MAIN_ID, 16) >= 0, True)
    owner = alt.list_buckets()["Owner"]
    expect_eq("alt owner", (owner["ID"], owner["DisplayName"]), (ALT_ID, ALT_NAME))
    main.create_bucket(Bucket="acl-main")
    acl = main.get_bucket_acl(Bucket="acl-main")
    expect_eq("default bucket ACL", grants_of(acl), [(MAIN_ID, "FULL_CONTROL")])
    expect_eq("bucket ACL owner", acl["Owner"]["ID"], MAIN_ID)
    expect_eq("alt sees only its buckets", [b["Name"] for b in alt.list_buckets()["Buckets"]], [])

with lane.scenario("aws s3 cp --acl public-read: anonymous curl-style GET served, the rest refused"):
    path = write_file("pub.txt", data(1, 3000))
    rc, out = aws("s3", "cp", path, "s3://acl-main/pub.txt", "--acl", "public-read")
    expect_eq("aws s3 cp --acl public-read", (rc, out[-200:] if rc else ""), (0, ""))
    main.put_object(Bucket="acl-main", Key="private.txt", Body=b"secret")
    status, body = anon_get("acl-main", "pub.txt")
    expect_eq("anonymous GET of a public-read object", (status, body), (200, data(1, 3000)))
    expect_eq("anonymous HEAD", http("HEAD", f"{ENDPOINT}/acl-main/pub.txt")[0], 200)
    status, body = anon_get("acl-main", "private.txt")
    expect_eq("anonymous GET of a private object", (status, b"<Code>AccessDenied</Code>" in body), (403, True))
    status, body = anon_get("acl-main", "missing.txt")
    expect_eq("anonymous GET of a missing key (no list right)", (status, b"AccessDenied" in body), (403, True))
    status, _, body = http("PUT", f"{ENDPOINT}/acl-main/anon.txt", body=b"x")
    expect_eq("anonymous PUT", (status, b"AccessDenied" in body), (403, True))
    status, _, body = http("GET", f"{ENDPOINT}/acl-main")
    expect_eq("anonymous list of a private bucket", (status, b"AccessDenied" in body), (403, True))
    acl = main.get_object_acl(Bucket="acl-main", Key="pub.txt")
    expect_eq("object ACL", grants_of(acl), sorted([(MAIN_ID, "FULL_CONTROL"), (ALL_USERS, "READ")]))
    expect_eq("anonymous GetObjectAcl", code_of(anon.get_object_acl, Bucket="acl-main", Key="pub.txt"),
              (403, "AccessDenied"))
    main.put_object_acl(Bucket="acl-main", Key="pub.txt", ACL="private")
    expect_eq("after private", anon_get("acl-main", "pub.txt")[0], 403)

with lane.scenario("explicit grants: XML by canonical id, headers by e-mail; alt reads and writes as granted"):
    denied("alt lists before a grant", alt.list_objects_v2, Bucket="acl-main")
    acl = main.get_bucket_acl(Bucket="acl-main")
    acl["Grants"].append({"Grantee": {"Type": "CanonicalUser", "ID": ALT_ID}, "Permission": "READ"})
    main.put_bucket_acl(Bucket="acl-main", AccessControlPolicy={"Grants": acl["Grants"], "Owner": acl["Owner"]})
    expect_eq("alt lists with READ", [o["Key"] for o in alt.list_objects_v2(Bucket="acl-main")["Contents"]],
              ["private.txt", "pub.txt"])
    denied("alt writes with READ only", alt.put_object, Bucket="acl-main", Key="alt.txt", Body=b"a")
    denied("bucket READ is not object READ", alt.get_object, Bucket="acl-main", Key="private.txt")
    expect_eq("a missing key, for a lister", code_of(alt.get_object, Bucket="acl-main", Key="nope"),
              (404, "NoSuchKey"))
    main.put_bucket_acl(Bucket="acl-main", GrantWrite=f'emailAddress="{ALT_EMAIL}"',
                        GrantFullControl=f'id="{MAIN_ID}"', GrantRead=f'id="{ALT_ID}"')
    expect_eq("grants from headers", grants_of(main.get_bucket_acl(Bucket="acl-main")),
              sorted([(MAIN_ID, "FULL_CONTROL"), (ALT_ID, "READ"), (ALT_ID, "WRITE")]))
    alt.put_object(Bucket="acl-main", Key="alt.txt", Body=b"from alt")
    expect_eq("ListObjects names the writer as owner",
              {o["Key"]: o["Owner"]["ID"] for o in main.list_objects(Bucket="acl-main")["Contents"]}["alt.txt"], ALT_ID)
    denied("the bucket owner cannot read what alt owns", main.get_object, Bucket="acl-main", Key="alt.txt")
    alt.put_object(Bucket="acl-main", Key="alt.txt", Body=b"from alt", ACL="bucket-owner-full-control")
    expect_eq("bucket-owner-full-control", main.get_object(Bucket="acl-main", Key="alt.txt")["Body"].read(),
              b"from alt")
    main.put_object_acl(Bucket="acl-main", Key="private.txt", GrantRead=f'id="{ALT_ID}"')
    expect_eq("alt reads an object it was granted",
              alt.get_object(Bucket="acl-main", Key="private.txt")["Body"].read(), b"secret")
    expect_eq("unknown canonical id", code_of(main.put_bucket_acl, Bucket="acl-main", GrantRead='id="' + "0" * 64 + '"'),
              (400, "InvalidArgument"))
    expect_eq("unknown e-mail", code_of(main.put_bucket_acl, Bucket="acl-main", GrantRead='emailAddress="x@nowhere"'),
              (400, "UnresolvableGrantByEmailAddress"))
    expect_eq("canned and grants together", code_of(main.put_object, Bucket="acl-main", Key="k", ACL="public-read",
                                                    GrantRead=f'id="{ALT_ID}"'), (400, "InvalidRequest"))
    main.put_bucket_acl(Bucket="acl-main", ACL="private")
    denied("alt after private", alt.list_objects_v2, Bucket="acl-main")

with lane.scenario("object ACLs by version"):
    main.create_bucket(Bucket="acl-versions")
    main.put_bucket_versioning(Bucket="acl-versions", VersioningConfiguration={"Status": "Enabled"})
    old = main.put_object(Bucket="acl-versions", Key="k", Body=b"old")["VersionId"]
    new = main.put_object(Bucket="acl-versions", Key="k", Body=b"new")["VersionId"]
    main.put_object_acl(Bucket="acl-versions", Key="k", VersionId=old, ACL="public-read")
    expect_eq("old version public", anon_get("acl-versions", "k", f"?versionId={old}"), (200, b"old"))
    expect_eq("current version private", anon_get("acl-versions", "k")[0], 403)
    expect_eq("ACL of the current version", grants_of(main.get_object_acl(Bucket="acl-versions", Key="k")),
              [(MAIN_ID, "FULL_CONTROL")])
    expect_eq("ACL of the old version",
              len(main.get_object_acl(Bucket="acl-versions", Key="k", VersionId=old)["Grants"]), 2)

with lane.scenario("bucket policy through aws-cli: anonymous reads under a prefix, SourceIp deny"):
    main.create_bucket(Bucket="acl-policy")
    for k in ["public/a.txt", "private/b.txt"]:
        main.put_object(Bucket="acl-policy", Key=k, Body=k.encode())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:s3:::acl-policy/public/*"]},
        {"Sid": "AltList", "Effect": "Allow", "Principal": {"AWS": [ALT_ID]}, "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::acl-policy", "Condition": {"StringLike": {"s3:prefix": "public/*"}}}]}
    rc, out = aws("s3api", "put-bucket-policy", "--bucket", "acl-policy", "--policy", json.dumps(policy))
    expect_eq("put-bucket-policy", (rc, out[-300:] if rc else ""), (0, ""))
    rc, out = aws("s3api", "get-bucket-policy", "--bucket", "acl-policy")
    expect_eq("get-bucket-policy", json.loads(json.loads(out)["Policy"]), policy)
    expect_eq("anonymous GET under public/", anon_get("acl-policy", "public/a.txt"), (200, b"public/a.txt"))
    expect_eq("anonymous GET elsewhere", anon_get("acl-policy", "private/b.txt")[0], 403)
    expect_eq("policy status", main.get_bucket_policy_status(Bucket="acl-policy")["PolicyStatus"]["IsPublic"], True)
    expect_eq("alt lists public/", [o["Key"] for o in alt.list_objects_v2(Bucket="acl-policy", Prefix="public/")["Contents"]],
              ["public/a.txt"])
    denied("alt lists private/", alt.list_objects_v2, Bucket="acl-policy", Prefix="private/")
    expect_eq("alt HEAD of a missing key it may list: 404",
              code_of(alt.head_object, Bucket="acl-policy", Key="public/none")[0], 404)
    expect_eq("alt HEAD of a missing key it may not list: 403",
              code_of(alt.head_object, Bucket="acl-policy", Key="private/none")[0], 403)
    # An explicit Deny wins over the Allow: this test runs from 127.0.0.1.
    policy["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::acl-policy/*",
                                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}})
    main.put_bucket_policy(Bucket="acl-policy", Policy=json.dumps(policy))
    expect_eq("denied from 127.0.0.1", anon_get("acl-policy", "public/a.txt")[0], 403)
    denied("even the owner", main.get_object, Bucket="acl-policy", Key="public/a.txt")
    policy["Statement"][-1]["Condition"] = {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
    main.put_bucket_policy(Bucket="acl-policy", Policy=json.dumps(policy))
    expect_eq("NotIpAddress lets 127.0.0.1 through", anon_get("acl-policy", "public/a.txt")[0], 200)
    for bad, why in [("{", "not JSON"), ('{"Statement": []}', "no statement"),
                     (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                  "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other-bucket/*"}]}), "other bucket")]:
        expect_eq(f"malformed policy ({why})", code_of(main.put_bucket_policy, Bucket="acl-policy", Policy=bad),
                  (400, "MalformedPolicy"))
    denied("alt cannot read the policy", alt.get_bucket_policy, Bucket="acl-policy")
    main.delete_bucket_policy(Bucket="acl-policy")
    expect_eq("no policy", code_of(main.get_bucket_policy, Bucket="acl-policy"), (404, "NoSuchBucketPolicy"))
    expect_eq("anonymous after delete", anon_get("acl-policy", "public/a.txt")[0], 403)

with lane.scenario("Public Access Block"):
    expect_eq("none set", code_of(main.get_public_access_block, Bucket="acl-policy"),
              (404, "NoSuchPublicAccessBlockConfiguration"))
    main.put_object(Bucket="acl-policy", Key="open.txt", Body=b"open", ACL="public-read")
    main.put_public_access_block(Bucket="acl-policy", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": False})
    conf = main.get_public_access_block(Bucket="acl-policy")["PublicAccessBlockConfiguration"]
    expect_eq("stored", conf, {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                               "RestrictPublicBuckets": False})
    denied("BlockPublicAcls refuses a public ACL", main.put_object, Bucket="acl-policy", Key="x", Body=b"x",
           ACL="public-read")
    expect_eq("IgnorePublicAcls hides the public grant", anon_get("acl-policy", "open.txt")[0], 403)
    public = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": "arn:aws:s3:::acl-policy/*"}]}
    denied("BlockPublicPolicy refuses a public policy", main.put_bucket_policy, Bucket="acl-policy",
           Policy=json.dumps(public))
    main.delete_public_access_block(Bucket="acl-policy")
    expect_eq("public again", anon_get("acl-policy", "open.txt"), (200, b"open"))

with lane.scenario("Object Ownership: BucketOwnerEnforced disables ACLs"):
    main.create_bucket(Bucket="acl-enforced", ObjectOwnership="BucketOwnerEnforced")
    expect_eq("ownership", main.get_bucket_ownership_controls(Bucket="acl-enforced")["OwnershipControls"]["Rules"],
              [{"ObjectOwnership": "BucketOwnerEnforced"}])
    expect_eq("a public ACL", code_of(main.put_object, Bucket="acl-enforced", Key="k", Body=b"k", ACL="public-read"),
              (400, "AccessControlListNotSupported"))
    main.put_object(Bucket="acl-enforced", Key="k", Body=b"k", ACL="bucket-owner-full-control")
    main.put_bucket_policy(Bucket="acl-enforced", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ALT_ID}, "Action": ["s3:PutObject", "s3:GetObject"],
        "Resource": "arn:aws:s3:::acl-enforced/*"}]}))
    alt.put_object(Bucket="acl-enforced", Key="from-alt", Body=b"alt")
    expect_eq("the bucket owner owns alt's object",
              main.get_object_acl(Bucket="acl-enforced", Key="from-alt")["Owner"]["ID"], MAIN_ID)
    expect_eq("and reads it", main.get_object(Bucket="acl-enforced", Key="from-alt")["Body"].read(), b"alt")
    main.delete_bucket_ownership_controls(Bucket="acl-enforced")
    expect_eq("deleted", code_of(main.get_bucket_ownership_controls, Bucket="acl-enforced"),
              (404, "OwnershipControlsNotFoundError"))

with lane.scenario("s3cmd setacl --acl-public and info"):
    cfg = write_file("s3cfg", (
        f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n"
        f"host_base = {ENDPOINT.split('://')[1]}\nhost_bucket = {ENDPOINT.split('://')[1]}\n"
        "use_https = False\nsignature_v2 = False\n").encode())

    def s3cmd(*args):
        out = subprocess.run(["s3cmd", "-c", cfg, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    s3cmd("setacl", "--acl-public", "s3://acl-main/private.txt")
    expect_eq("public through s3cmd", anon_get("acl-main", "private.txt"), (200, b"secret"))
    info = s3cmd("info", "s3://acl-main/private.txt")
    assert "*anon*: READ" in info, info
    s3cmd("setacl", "--acl-private", "s3://acl-main/private.txt")
    expect_eq("private through s3cmd", anon_get("acl-main", "private.txt")[0], 403)

with lane.scenario("anonymous POST form to a public-read-write bucket; expected bucket owner"):
    main.create_bucket(Bucket="acl-dropbox", ACL="public-read-write")
    boundary = "----kaligonformboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\ndrop/${{filename}}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, body = http("POST", f"{ENDPOINT}/acl-dropbox", body=form, headers=headers)
    expect_eq("anonymous form upload", status, 204)
    expect_eq("stored", main.get_object(Bucket="acl-dropbox", Key="drop/f.txt")["Body"].read(), b"hello")
    status, _, body = http("POST", f"{ENDPOINT}/acl-main", body=form, headers=headers)
    expect_eq("to a private bucket", (status, b"AccessDenied" in body), (403, True))
    expect_eq("anonymous list of a public-read-write bucket",
              [o["Key"] for o in anon.list_objects_v2(Bucket="acl-dropbox")["Contents"]], ["drop/f.txt"])
    expect_eq("right expected owner", code_of(main.head_bucket, Bucket="acl-main", ExpectedBucketOwner=MAIN_ID)[0], 200)
    expect_eq("wrong expected owner", code_of(main.get_object, Bucket="acl-main", Key="pub.txt",
                                              ExpectedBucketOwner=ALT_ID), (403, "AccessDenied"))

lane.finish()
