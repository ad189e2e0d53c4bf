"""Lifecycle rules and tagging with real clients: aws-cli, boto3 and s3cmd
set and read rules; objects, versions, delete markers and uploads really
go at the scaled time. The node runs with --lifecycle-day-secs (DAY below),
so one lifecycle day lasts DAY seconds."""

import datetime
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.exceptions import ClientError

from lane import ACCESS_KEY, ENDPOINT, REGION, SECRET_KEY, WORK, Lane, aws, expect_eq, s3_error_code, s3cmd, write_file

BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION)
DAY = float(os.environ.get("KALIGON_LIFECYCLE_DAY_SECS", "2"))
lane = Lane("lifecycle", f"boto3 {boto3.__version__} and aws-cli from the venv, s3cmd from Debian")
s3 = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                           region_name=REGION).client("s3", endpoint_url=ENDPOINT)


def error_of(call):
    try:
        call()
    except ClientError as e:
        return s3_error_code(e)
    raise AssertionError("the call succeeded")


def dates_as_text(value):
    """boto3 parses a rule's Date into a datetime; compare it as the text sent."""
    if isinstance(value, dict):
        return {k: dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dates_as_text(v) for v in value]
    if hasattr(value, "strftime"):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def keys(bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def wait_until(what, check, days):
    """Polls `check` for up to `days` lifecycle days."""
    deadline = time.time() + days * DAY
    while True:
        if check():
            return
        assert time.time() < deadline, f"{what}: not within {days} lifecycle days"
        time.sleep(DAY / 4)


EVERY_RULE = {"Rules": [
    {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}},
    {"ID": "dated", "Filter": {"And": {"Prefix": "old/", "Tags": [{"Key": "k", "Value": "v"}],
                                        "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
     "Status": "Disabled", "Expiration": {"Date": "2030-01-01T00:00:00Z"}},
    {"ID": "markers", "Filter": {}, "Status": "Enabled", "Expiration": {"ExpiredObjectDeleteMarker": True}},
    {"ID": "noncurrent", "Filter": {"Tag": {"Key": "keep", "Value": "no"}}, "Status": "Enabled",
     "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3}},
    {"ID": "uploads", "Filter": {"Prefix": "up/"}, "Status": "Enabled",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    {"ID": "small", "Filter": {"ObjectSizeLessThan": 100}, "Status": "Enabled", "Expiration": {"Days": 9}},
]}

with lane.scenario("aws-cli put-bucket-lifecycle-configuration with every rule kind; get returns it"):
    aws("s3", "mb", "s3://lc-cli")
    path = write_file("lc.json", json.dumps(EVERY_RULE).encode())
    aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", "lc-cli", "--lifecycle-configuration",
        f"file://{path}")
    got = json.loads(aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", "lc-cli"))
    expect_eq("rules back from aws-cli", got["Rules"], EVERY_RULE["Rules"])
    aws("s3api", "delete-bucket-lifecycle", "--bucket", "lc-cli")
    out = subprocess.run([os.path.join(BIN, "aws"), "--endpoint-url", ENDPOINT, "s3api",
                          "get-bucket-lifecycle-configuration", "--bucket", "lc-cli"], env=ENV,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "NoSuchLifecycleConfiguration" in out.stderr, out.stderr

with lane.scenario("boto3 lifecycle: the same rules, the legacy Prefix form, and AWS's refusals"):
    B = "lc-boto3"
    s3.create_bucket(Bucket=B)
    expect_eq("no rules yet", error_of(lambda: s3.get_bucket_lifecycle_configuration(Bucket=B)),
              "NoSuchLifecycleConfiguration")
    s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration=EVERY_RULE)
    expect_eq("rules back from boto3", dates_as_text(s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"]),
              EVERY_RULE["Rules"])
    legacy = [{"ID": "a", "Prefix": "a/", "Status": "Enabled", "Expiration": {"Days": 1}},
              {"ID": "b", "Prefix": "b/", "Status": "Disabled", "Expiration": {"Days": 2}}]
    s3.put_bucket_lifecycle(Bucket=B, LifecycleConfiguration={"Rules": legacy})
    expect_eq("legacy rules", s3.get_bucket_lifecycle(Bucket=B)["Rules"], legacy)
    no_id = s3.put_bucket_lifecycle_configuration(
        Bucket=B, LifecycleConfiguration={"Rules": [{"Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}}]})
    assert s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"][0]["ID"], "no ID made up"

    def put(rules):
        return lambda: s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": rules})

    def rule(**kw):
        return dict({"ID": "r", "Filter": {}, "Status": "Enabled"}, **kw)

    refusals = [
        ("Days 0", [rule(Expiration={"Days": 0})], "InvalidArgument"),
        ("Date not at midnight", [rule(Expiration={"Date": "2030-01-01T10:00:00Z"})], "InvalidArgument"),
        ("Days and delete markers", [rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})],
         "MalformedXML"),
        ("NewerNoncurrentVersions 101",
         [rule(NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 101})],
         "InvalidArgument"),
        ("abort with a tag filter",
         [rule(Filter={"Tag": {"Key": "k", "Value": "v"}}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1})],
         "InvalidRequest"),
        ("same ID twice", [rule(Expiration={"Days": 1}), rule(Expiration={"Days": 2})], "InvalidArgument"),
        ("ID of 256 characters", [rule(ID="a" * 256, Expiration={"Days": 1})], "InvalidArgument"),
        ("status enabled", [rule(Status="enabled", Expiration={"Days": 1})], "MalformedXML"),
        ("transition to an undeclared tier",
         [rule(Transitions=[{"Days": 1, "StorageClass": "GLACIER"}], Expiration={"Days": 5})], "InvalidStorageClass"),
    ]
    for what, rules, code in refusals:
        expect_eq(what, error_of(put(rules)), code)
    # A refused document changes nothing.
    expect_eq("rules after refusals", len(s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"]), 1)

with lane.scenario("s3cmd setlifecycle / getlifecycle / expire / dellifecycle"):
    s3cmd("mb", "s3://lc-s3cmd")
    xml = ("<LifecycleConfiguration><Rule><ID>tmp</ID><Prefix>tmp/</Prefix><Status>Enabled</Status>"
           "<Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>")
    s3cmd("setlifecycle", write_file("lc.xml", xml.encode()), "s3://lc-s3cmd")
    got = s3cmd("getlifecycle", "s3://lc-s3cmd")
    assert "<ID>tmp</ID>" in got and "<Days>3</Days>" in got, got
    s3cmd("expire", "s3://lc-s3cmd", "--expiry-days=5", "--expiry-prefix=cache/")
    rules = s3.get_bucket_lifecycle_configuration(Bucket="lc-s3cmd")["Rules"]
    assert any(r.get("Expiration", {}).get("Days") == 5 for r in rules), rules
    s3cmd("dellifecycle", "s3://lc-s3cmd")
    expect_eq("deleted", error_of(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-s3cmd")),
              "NoSuchLifecycleConfiguration")

with lane.scenario("object and bucket tagging: put/get/delete, x-amz-tagging, copy directive, multipart, limits"):
    B = "tags"
    s3.create_bucket(Bucket=B)
    s3.put_object(Bucket=B, Key="k", Body=b"tagged", Tagging="b=2&a=1&flag")
    expect_eq("tags from the header", s3.get_object_tagging(Bucket=B, Key="k")["TagSet"],
              [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}, {"Key": "flag", "Value": ""}])
    expect_eq("tag count", s3.head_object(Bucket=B, Key="k")["ResponseMetadata"]["HTTPHeaders"]
              ["x-amz-tagging-count"], "3")
    s3.put_object_tagging(Bucket=B, Key="k", Tagging={"TagSet": [{"Key": "x", "Value": "y"}]})
    expect_eq("replaced", s3.get_object_tagging(Bucket=B, Key="k")["TagSet"], [{"Key": "x", "Value": "y"}])
    expect_eq("bytes unchanged", s3.get_object(Bucket=B, Key="k")["Body"].read(), b"tagged")
    s3.copy_object(Bucket=B, Key="copied", CopySource={"Bucket": B, "Key": "k"})
    expect_eq("copy keeps tags", s3.get_object_tagging(Bucket=B, Key="copied")["TagSet"], [{"Key": "x", "Value": "y"}])
    s3.copy_object(Bucket=B, Key="replaced", CopySource={"Bucket": B, "Key": "k"}, TaggingDirective="REPLACE",
                   Tagging="n=1")
    expect_eq("copy replaces tags", s3.get_object_tagging(Bucket=B, Key="replaced")["TagSet"],
              [{"Key": "n", "Value": "1"}])
    up = s3.create_multipart_upload(Bucket=B, Key="mp", Tagging="m=p")
    part = s3.upload_part(Bucket=B, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    expect_eq("multipart tags", s3.get_object_tagging(Bucket=B, Key="mp")["TagSet"], [{"Key": "m", "Value": "p"}])
    s3.delete_object_tagging(Bucket=B, Key="k")
    expect_eq("deleted tags", s3.get_object_tagging(Bucket=B, Key="k")["TagSet"], [])
    eleven = {"TagSet": [{"Key": str(i), "Value": ""} for i in range(11)]}
    expect_eq("11 tags", error_of(lambda: s3.put_object_tagging(Bucket=B, Key="k", Tagging=eleven)), "BadRequest")
    long_key = {"TagSet": [{"Key": "k" * 129, "Value": ""}]}
    expect_eq("long key", error_of(lambda: s3.put_object_tagging(Bucket=B, Key="k", Tagging=long_key)), "InvalidTag")
    expect_eq("aws: prefix", error_of(lambda: s3.put_object(Bucket=B, Key="k2", Body=b"", Tagging="aws:x=1")),
              "InvalidTag")
    expect_eq("missing key", error_of(lambda: s3.get_object_tagging(Bucket=B, Key="nope")), "NoSuchKey")
    # Versions keep their own tags.
    s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=B, Key="v", Body=b"1", Tagging="gen=1")["VersionId"]
    s3.put_object(Bucket=B, Key="v", Body=b"2", Tagging="gen=2")
    s3.put_object_tagging(Bucket=B, Key="v", VersionId=v1, Tagging={"TagSet": [{"Key": "gen", "Value": "old"}]})
    expect_eq("old version's tags", s3.get_object_tagging(Bucket=B, Key="v", VersionId=v1)["TagSet"],
              [{"Key": "gen", "Value": "old"}])
    expect_eq("current version's tags", s3.get_object_tagging(Bucket=B, Key="v")["TagSet"],
              [{"Key": "gen", "Value": "2"}])
    expect_eq("no bucket tags", error_of(lambda: s3.get_bucket_tagging(Bucket=B)), "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=B, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    expect_eq("bucket tags", s3.get_bucket_tagging(Bucket=B)["TagSet"], [{"Key": "team", "Value": "storage"}])
    many = {"TagSet": [{"Key": str(i), "Value": ""} for i in range(51)]}
    expect_eq("51 bucket tags", error_of(lambda: s3.put_bucket_tagging(Bucket=B, Tagging=many)), "BadRequest")
    s3.delete_bucket_tagging(Bucket=B)
    expect_eq("bucket tags deleted", error_of(lambda: s3.get_bucket_tagging(Bucket=B)), "NoSuchTagSet")
    # Setting versioning after tags, and tags after versioning, keep both.
    expect_eq("versioning kept", s3.get_bucket_versioning(Bucket=B)["Status"], "Enabled")

with lane.scenario("expiration at the scaled time: prefix, tag and size filters; x-amz-expiration"):
    B = "lc-expire"
    s3.create_bucket(Bucket=B)
    s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "tagged", "Filter": {"Tag": {"Key": "ttl", "Value": "short"}}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "big", "Filter": {"ObjectSizeGreaterThan": 100}, "Status": "Enabled", "Expiration": {"Days": 2}},
        {"ID": "off", "Filter": {"Prefix": "keep/"}, "Status": "Disabled", "Expiration": {"Days": 1}},
    ]})
    put = s3.put_object(Bucket=B, Key="tmp/a", Body=b"a")
    header = put["ResponseMetadata"]["HTTPHeaders"].get("x-amz-expiration", "")
    assert header.startswith('expiry-date="') and header.endswith('rule-id="tmp"'), header
    s3.put_object(Bucket=B, Key="tagged", Body=b"t", Tagging="ttl=short")
    s3.put_object(Bucket=B, Key="untagged", Body=b"u", Tagging="ttl=long")
    s3.put_object(Bucket=B, Key="big", Body=b"x" * 101)
    s3.put_object(Bucket=B, Key="keep/a", Body=b"k")
    assert "x-amz-expiration" not in s3.head_object(Bucket=B, Key="keep/a")["ResponseMetadata"]["HTTPHeaders"]
    wait_until("tmp/ and tagged expire", lambda: keys(B) == ["keep/a", "untagged"], 6)
    expect_eq("NoSuchKey after expiry", error_of(lambda: s3.get_object(Bucket=B, Key="tmp/a")), "NoSuchKey")

with lane.scenario("versioned: current expiry adds a marker, noncurrent versions go keeping the newest, "
                   "expired markers go"):
    B = "lc-versions"
    s3.create_bucket(Bucket=B)
    s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
    for i in range(6):
        s3.put_object(Bucket=B, Key="many", Body=f"v{i}".encode())
    s3.put_object(Bucket=B, Key="doomed/x", Body=b"x")
    s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": [
        {"ID": "nc", "Filter": {"Prefix": "many"}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 2}},
        {"ID": "cur", "Filter": {"Prefix": "doomed/"}, "Status": "Enabled", "Expiration": {"Days": 1},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "dm", "Filter": {"Prefix": "doomed/"}, "Status": "Enabled",
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]})

    def versions(key):
        r = s3.list_object_versions(Bucket=B, Prefix=key)
        return len(r.get("Versions", [])), len(r.get("DeleteMarkers", []))

    wait_until("noncurrent versions of many", lambda: versions("many") == (3, 0), 6)
    expect_eq("current still readable", s3.get_object(Bucket=B, Key="many")["Body"].read(), b"v5")
    # doomed/x: a marker is added (day 1), the old version then goes (noncurrent
    # for a day), and the marker, alone, goes too.
    wait_until("doomed/x fully gone", lambda: versions("doomed/") == (0, 0), 8)

with lane.scenario("AbortIncompleteMultipartUpload aborts old uploads and frees their parts"):
    B = "lc-uploads"
    s3.create_bucket(Bucket=B)
    s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": [
        {"ID": "abort", "Filter": {"Prefix": "up/"}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    doomed = s3.create_multipart_upload(Bucket=B, Key="up/a")
    headers = doomed["ResponseMetadata"]["HTTPHeaders"]
    expect_eq("abort rule id", headers.get("x-amz-abort-rule-id"), "abort")
    assert headers.get("x-amz-abort-date"), headers
    s3.upload_part(Bucket=B, Key="up/a", UploadId=doomed["UploadId"], PartNumber=1, Body=b"p" * 1024)
    kept = s3.create_multipart_upload(Bucket=B, Key="other")
    assert "x-amz-abort-date" not in kept["ResponseMetadata"]["HTTPHeaders"]

    def uploads():
        return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", []))

    wait_until("up/a aborted", lambda: uploads() == ["other"], 5)
    expect_eq("parts gone", error_of(lambda: s3.list_parts(Bucket=B, Key="up/a", UploadId=doomed["UploadId"])),
              "NoSuchUpload")

lane.finish()
