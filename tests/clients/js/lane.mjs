// The AWS SDK for JavaScript v3 with its default configuration (default
// checksums: CRC32 on every upload, response validation when supported)
// against a node, directly or through the TLS proxy.
//
// Only the endpoint, the credentials, the region and path-style addressing
// are set. Conventions follow tests/clients/lane.py: each scenario prints
// "[js VIA] name ..." then "[js VIA] name: ok (N ms)", checks what comes back
// (bytes, ETags, metadata), and any failure exits non-zero. When
// KALIGON_LANE_OUT is set the lane writes what it covered there as JSON.

import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { crc32 } from "node:zlib";

import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const ENDPOINT = env("KALIGON_ENDPOINT");
const ACCESS_KEY = env("KALIGON_ACCESS_KEY");
const SECRET_KEY = env("KALIGON_SECRET_KEY");
const WORK = env("KALIGON_WORK");
const REGION = "us-east-1";
// Set when the endpoint is the TLS proxy: its self-signed certificate.
const CA = process.env.KALIGON_CA ? readFileSync(process.env.KALIGON_CA) : undefined;
const VIA = process.env.KALIGON_VIA || "direct";
const MiB = 1 << 20;

// Only silences the SDK's notice that releases after January 2027 need Node
// 22; it changes nothing in what the client sends.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const CLIENT = "@aws-sdk/client-s3 (JS v3)";
const VERSION = JSON.parse(
  readFileSync(new URL("./node_modules/@aws-sdk/client-s3/package.json", import.meta.url), "utf8"),
).version;
const LABEL = `[js ${VIA}]`;

// --- helpers ---------------------------------------------------------------

/** Deterministic bytes that differ per seed (splitmix32). */
function data(seed, size) {
  const out = Buffer.allocUnsafe(size);
  let s = (seed * 0x9e3779b9) >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let i = 0;
  for (; i + 4 <= size; i += 4) out.writeUInt32LE(next(), i);
  if (i < size) {
    const last = next();
    for (let k = 0; i < size; i++, k++) out[i] = (last >>> (8 * k)) & 0xff;
  }
  return out;
}

const md5 = (b) => createHash("md5").update(b).digest("hex");

/** The base64 CRC32 S3 sends in x-amz-checksum-crc32. */
function crc32b64(b) {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(b) >>> 0);
  return out.toString("base64");
}

/** AWS's ETag of a multipart object: md5 of the binary part md5s, then -N. */
function multipartEtag(body, partSize) {
  const digests = [];
  for (let i = 0; i < body.length; i += partSize) {
    digests.push(createHash("md5").update(body.subarray(i, i + partSize)).digest());
  }
  return `${md5(Buffer.concat(digests))}-${digests.length}`;
}

function show(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `${v.length} bytes (md5 ${md5(v)})`;
  return JSON.stringify(v);
}

function expectEq(what, got, want) {
  const same =
    (got instanceof Uint8Array && want instanceof Uint8Array)
      ? Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), want) === 0
      : JSON.stringify(got) === JSON.stringify(want);
  if (!same) throw new Error(`${what}: got ${show(got)}, want ${show(want)}`);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function writeWork(name, body) {
  const p = path.join(WORK, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, body);
  return p;
}

const bytes = async (resp) => Buffer.from(await resp.Body.transformToByteArray());

/** Runs `fn` expecting it to throw; returns the error. */
async function rejects(what, fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded`);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One plain HTTP(S) request sending exactly the headers given. */
function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const opts = { method, headers: { ...headers }, timeout: 60_000 };
    if (u.protocol === "https:" && CA) opts.ca = CA;
    if (body !== undefined) opts.headers["content-length"] = body.length;
    const req = mod.request(u, opts, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

const scenarios = [];
let current = "(setup)";

async function scenario(name, fn) {
  current = name;
  const start = performance.now();
  console.log(`${LABEL} ${name} ...`);
  await fn();
  console.log(`${LABEL} ${name}: ok (${Math.round(performance.now() - start)} ms)`);
  scenarios.push(name);
}

function finish() {
  const out = process.env.KALIGON_LANE_OUT;
  if (out) {
    writeFileSync(out, JSON.stringify({ client: CLIENT, version: VERSION, via: VIA, scenarios }, null, 1));
  }
  console.log(`${LABEL} ${scenarios.length} scenarios passed`);
}

// --- the client ------------------------------------------------------------

const s3 = new S3Client({
  endpoint: ENDPOINT,
  region: REGION,
  credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  forcePathStyle: true,
  // Options for the SDK's default NodeHttpHandler: trust the proxy's CA.
  ...(CA ? { requestHandler: { httpsAgent: new https.Agent({ ca: CA, keepAlive: true }) } } : {}),
});

const B = "js-lane";
const V = "js-versions";

async function main() {
  console.log(`${LABEL} ${CLIENT} ${VERSION} against ${ENDPOINT}`);

  await scenario("create/head/list buckets", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: B }));
    const head = await s3.send(new HeadBucketCommand({ Bucket: B }));
    expectEq("HeadBucket status", head.$metadata.httpStatusCode, 200);
    const names = ((await s3.send(new ListBucketsCommand({}))).Buckets || []).map((b) => b.Name);
    check(names.includes(B), `ListBuckets lacks ${B}: ${JSON.stringify(names)}`);
  });

  const small = data(1, 3 * MiB + 17);
  const smallKey = "dir/a b+c.bin";

  await scenario("put/get/head with metadata and default CRC32 checksums", async () => {
    const put = await s3.send(new PutObjectCommand({
      Bucket: B, Key: smallKey, Body: small, ContentType: "application/x-test", Metadata: { owner: "lane" },
    }));
    expectEq("put ETag", put.ETag, `"${md5(small)}"`);
    check(put.ChecksumCRC32, `no CRC32 echoed by PutObject: ${JSON.stringify(put)}`);
    expectEq("put CRC32", put.ChecksumCRC32, crc32b64(small));
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: smallKey, ChecksumMode: "ENABLED" }));
    expectEq("get body", await bytes(got), small);
    expectEq("get ETag", got.ETag, put.ETag);
    expectEq("get CRC32", got.ChecksumCRC32, put.ChecksumCRC32);
    expectEq("content type", got.ContentType, "application/x-test");
    expectEq("metadata", got.Metadata, { owner: "lane" });
    expectEq("content length", got.ContentLength, small.length);
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: smallKey }));
    expectEq("head length", head.ContentLength, small.length);
    expectEq("head ETag", head.ETag, put.ETag);
    expectEq("head metadata", head.Metadata, { owner: "lane" });
    const rng = await s3.send(new GetObjectCommand({ Bucket: B, Key: smallKey, Range: "bytes=100-199" }));
    expectEq("range status", rng.$metadata.httpStatusCode, 206);
    expectEq("range", await bytes(rng), small.subarray(100, 200));
    expectEq("content-range", rng.ContentRange, `bytes 100-199/${small.length}`);
  });

  await scenario("errors: NoSuchKey on GET of a missing key", async () => {
    const e = await rejects("GET of a missing key",
      () => s3.send(new GetObjectCommand({ Bucket: B, Key: "missing" })));
    expectEq("error name", e.name, "NoSuchKey");
    expectEq("error status", e.$metadata?.httpStatusCode, 404);
  });

  const big = data(2, 20 * MiB + 5);

  await scenario("lib-storage Upload multipart (20 MiB, 5 MiB parts, queueSize 4)", async () => {
    const src = writeWork("js/big.bin", big);
    const up = new Upload({
      client: s3,
      params: { Bucket: B, Key: "big/file.bin", Body: createReadStream(src), Metadata: { kind: "big" } },
      partSize: 5 * MiB,
      queueSize: 4,
    });
    const parts = new Set();
    up.on("httpUploadProgress", (p) => p.part && parts.add(p.part));
    const done = await up.done();
    const want = `"${multipartEtag(big, 5 * MiB)}"`;
    check(want.endsWith('-5"'), `expected 5 parts, computed ${want}`);
    expectEq("parts uploaded", parts.size, 5);
    expectEq("Upload result ETag", done.ETag, want);
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "big/file.bin" }));
    expectEq("multipart ETag", head.ETag, want);
    expectEq("multipart length", head.ContentLength, big.length);
    expectEq("multipart metadata", head.Metadata, { kind: "big" });
    // A whole GET with the SDK's default response validation.
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "big/file.bin" }));
    expectEq("multipart GET", await bytes(got), big);
    expectEq("multipart GET ETag", got.ETag, want);
  });

  await scenario("CopyObject with MetadataDirective REPLACE", async () => {
    const r = await s3.send(new CopyObjectCommand({
      Bucket: B, Key: "copy/a", CopySource: `${B}/${encodeURIComponent(smallKey)}`,
      MetadataDirective: "REPLACE", Metadata: { new: "1" }, ContentType: "text/plain",
    }));
    expectEq("copy result ETag", r.CopyObjectResult?.ETag, `"${md5(small)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/a" }));
    expectEq("copied body", await bytes(got), small);
    expectEq("copied metadata", got.Metadata, { new: "1" });
    expectEq("copied content type", got.ContentType, "text/plain");
    expectEq("copied ETag", got.ETag, r.CopyObjectResult.ETag);
    // The source keeps its own metadata.
    const src = await s3.send(new HeadObjectCommand({ Bucket: B, Key: smallKey }));
    expectEq("source metadata", src.Metadata, { owner: "lane" });
  });

  const keys = Array.from({ length: 250 }, (_, i) => `list/${String(Math.floor(i / 100)).padStart(2, "0")}/${String(i).padStart(5, "0")}`);

  await scenario("paginated listing (paginateListObjectsV2, 250 keys, delimiter)", async () => {
    await pool(keys, 8, async (k) => {
      const r = await s3.send(new PutObjectCommand({ Bucket: B, Key: k, Body: Buffer.from(k) }));
      expectEq(`ETag of ${k}`, r.ETag, `"${md5(Buffer.from(k))}"`);
    });
    const seen = [];
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client: s3, pageSize: 100 }, { Bucket: B, Prefix: "list/" })) {
      pages++;
      for (const o of page.Contents || []) {
        seen.push(o.Key);
        if (o.Key === keys[7]) {
          expectEq("listed ETag", o.ETag, `"${md5(Buffer.from(keys[7]))}"`);
          expectEq("listed size", o.Size, keys[7].length);
        }
      }
    }
    expectEq("v2 listing", seen, keys);
    expectEq("pages", pages, 3);
    const prefixes = [];
    for await (const page of paginateListObjectsV2({ client: s3, pageSize: 100 },
      { Bucket: B, Prefix: "list/", Delimiter: "/" })) {
      prefixes.push(...(page.CommonPrefixes || []).map((p) => p.Prefix));
      expectEq("contents beside prefixes", (page.Contents || []).length, 0);
    }
    expectEq("common prefixes", prefixes, ["list/00/", "list/01/", "list/02/"]);
  });

  await scenario("DeleteObjects (250 keys)", async () => {
    const resp = await s3.send(new DeleteObjectsCommand({
      Bucket: B, Delete: { Objects: keys.map((Key) => ({ Key })) },
    }));
    check(!(resp.Errors || []).length, `DeleteObjects errors: ${JSON.stringify(resp.Errors)}`);
    expectEq("deleted count", (resp.Deleted || []).length, 250);
    expectEq("deleted keys", resp.Deleted.map((d) => d.Key).sort(), [...keys].sort());
    const left = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "list/" }));
    expectEq("left after delete", left.KeyCount, 0);
    expectEq("contents after delete", left.Contents || [], []);
  });

  await scenario("presigned GET/PUT (s3-request-presigner)", async () => {
    const body = data(3, 70_000);
    const key = "presigned/js";
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: key }), { expiresIn: 300 });
    let r = await request("PUT", putUrl, body);
    expectEq("presigned PUT", [r.status, r.body.toString()], [200, ""]);
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: key }));
    expectEq("presigned PUT ETag", head.ETag, `"${md5(body)}"`);
    expectEq("presigned PUT length", head.ContentLength, body.length);
    // Read back through the SDK, with its default response validation.
    const back = await s3.send(new GetObjectCommand({ Bucket: B, Key: key }));
    expectEq("presigned PUT read back", await bytes(back), body);
    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: key }), { expiresIn: 300 });
    r = await request("GET", getUrl);
    expectEq("presigned GET status", r.status, 200);
    expectEq("presigned GET body", r.body, body);
    expectEq("presigned GET ETag", r.headers.etag, `"${md5(body)}"`);
    // Flip one character of the signature.
    const at = getUrl.indexOf("X-Amz-Signature=") + "X-Amz-Signature=".length;
    check(at >= "X-Amz-Signature=".length, `no X-Amz-Signature in ${getUrl}`);
    const bad = getUrl.slice(0, at) + (getUrl[at] !== "0" ? "0" : "1") + getUrl.slice(at + 1);
    r = await request("GET", bad);
    expectEq("tampered URL status", r.status, 403);
    check(r.body.includes("<Code>SignatureDoesNotMatch</Code>"), `tampered URL body: ${r.body}`);
  });

  await scenario("versioning: versions, delete marker, get by version id", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: V }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: V, VersioningConfiguration: { Status: "Enabled" } }));
    const one = Buffer.from("one");
    const two = Buffer.from("two");
    const p1 = await s3.send(new PutObjectCommand({ Bucket: V, Key: "doc", Body: one }));
    const p2 = await s3.send(new PutObjectCommand({ Bucket: V, Key: "doc", Body: two }));
    check(p1.VersionId && p2.VersionId && p1.VersionId !== p2.VersionId,
      `version ids: ${p1.VersionId}, ${p2.VersionId}`);
    expectEq("v1 ETag", p1.ETag, `"${md5(one)}"`);
    expectEq("v2 ETag", p2.ETag, `"${md5(two)}"`);
    const marker = await s3.send(new DeleteObjectCommand({ Bucket: V, Key: "doc" }));
    expectEq("delete marker", marker.DeleteMarker, true);
    check(marker.VersionId, "delete marker has no VersionId");
    const gone = await rejects("GET after delete", () => s3.send(new GetObjectCommand({ Bucket: V, Key: "doc" })));
    expectEq("GET after delete status", gone.$metadata?.httpStatusCode, 404);
    const vs = await s3.send(new ListObjectVersionsCommand({ Bucket: V }));
    expectEq("versions", (vs.Versions || []).map((v) => v.VersionId), [p2.VersionId, p1.VersionId]);
    expectEq("version ETags", (vs.Versions || []).map((v) => v.ETag), [p2.ETag, p1.ETag]);
    expectEq("markers", (vs.DeleteMarkers || []).map((m) => m.VersionId), [marker.VersionId]);
    expectEq("marker is latest", vs.DeleteMarkers[0].IsLatest, true);
    const old = await s3.send(new GetObjectCommand({ Bucket: V, Key: "doc", VersionId: p1.VersionId }));
    expectEq("old version", await bytes(old), one);
    expectEq("old version id", old.VersionId, p1.VersionId);
    expectEq("old version ETag", old.ETag, p1.ETag);
  });

  finish();
  s3.destroy();
}

main().catch((e) => {
  console.error(`${LABEL} ${current}: FAILED: ${e?.stack || e}`);
  if (e?.$metadata) console.error(`${LABEL} $metadata: ${JSON.stringify(e.$metadata)}`);
  if (e?.$response) {
    const r = e.$response;
    console.error(`${LABEL} response: ${r.statusCode} ${JSON.stringify(r.headers)}`);
  }
  process.exit(1);
});
