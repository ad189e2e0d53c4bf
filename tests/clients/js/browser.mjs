// A real browser uploads through the example page (examples/upload/):
// headless Chromium from Debian, driven by puppeteer-core, loads the page
// from its own origin (a static file server here) and uploads to the node
// by presigned PUT, POST form and multipart, reading each ETag from the
// response. The AWS SDK then checks the stored bytes. The same page against
// a bucket without CORS rules must fail in the browser, so this cannot pass
// without CORS.
//
// Conventions as in lane.mjs; KALIGON_SCREENSHOT names where the page's
// screenshot after the uploads goes (examples/upload/screenshot.png keeps one).

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketCorsCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import puppeteer from "puppeteer-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const ENDPOINT = env("KALIGON_ENDPOINT");
const ACCESS_KEY = env("KALIGON_ACCESS_KEY");
const SECRET_KEY = env("KALIGON_SECRET_KEY");
const WORK = env("KALIGON_WORK");
const CHROMIUM = process.env.KALIGON_CHROMIUM || "/usr/bin/chromium";
const PAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../examples/upload");
const LABEL = "[browser]";
const MiB = 1 << 20;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const scenarios = [];
async function scenario(name, fn) {
  const start = performance.now();
  console.log(`${LABEL} ${name} ...`);
  await fn();
  console.log(`${LABEL} ${name}: ok (${Math.round(performance.now() - start)} ms)`);
  scenarios.push(name);
}

function expectEq(what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

const md5 = (b) => createHash("md5").update(b).digest("hex");
function multipartEtag(body, partSize) {
  const digests = [];
  for (let i = 0; i < body.length; i += partSize) digests.push(createHash("md5").update(body.subarray(i, i + partSize)).digest());
  return `"${md5(Buffer.concat(digests))}-${digests.length}"`;
}

/** The example page's directory over HTTP, as any static file server would. */
function staticServer() {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".png": "image/png" };
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, "http://x").pathname) || "index.html";
    try {
      const body = readFileSync(path.join(PAGE_DIR, name));
      res.writeHead(200, { "content-type": types[path.extname(name)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const s3 = new S3Client({
  endpoint: ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  forcePathStyle: true,
});
const stored = async (bucket, key) =>
  Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body.transformToByteArray());

const server = await staticServer();
const ORIGIN = `http://127.0.0.1:${server.address().port}`;
if (new URL(ENDPOINT).origin === ORIGIN) throw new Error("the page must come from another origin than the node");

// 12 MiB of deterministic bytes: three multipart parts (5 + 5 + 2 MiB).
const body = Buffer.alloc(12 * MiB);
for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
mkdirSync(WORK, { recursive: true });
const file = path.join(WORK, "photo.bin");
writeFileSync(file, body);

await s3.send(new CreateBucketCommand({ Bucket: "web" }));
await s3.send(new CreateBucketCommand({ Bucket: "web-nocors" }));
await s3.send(
  new PutBucketCorsCommand({
    Bucket: "web",
    CORSConfiguration: {
      CORSRules: [
        {
          AllowedOrigins: [ORIGIN],
          AllowedMethods: ["GET", "PUT", "POST", "HEAD"],
          AllowedHeaders: ["*"],
          ExposeHeaders: ["ETag", "x-amz-version-id"],
          MaxAgeSeconds: 60,
        },
      ],
    },
  }),
);

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in a container: no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const VERSION = await browser.version();

async function openPage(bucket) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  const q = new URLSearchParams({ endpoint: ENDPOINT, bucket, accessKey: ACCESS_KEY, secretKey: SECRET_KEY });
  await page.goto(`${ORIGIN}/index.html?${q}`, { waitUntil: "load" });
  await (await page.$("#file")).uploadFile(file);
  return page;
}

/** Clicks an upload button; the page's report of it. */
async function upload(page, method) {
  await page.click(`#${method}`);
  const li = await page.waitForSelector(`#results li[data-method="${method}"]`, { timeout: 60_000 });
  return li.evaluate((e) => ({ key: e.dataset.key, etag: e.dataset.etag ?? null, error: e.dataset.error ?? null }));
}

try {
  const page = await openPage("web");
  const want = { put: `"${md5(body)}"`, post: `"${md5(body)}"`, multipart: multipartEtag(body, 5 * MiB) };
  for (const [method, what] of [
    ["put", "presigned PUT"],
    ["post", "POST policy form"],
    ["multipart", "multipart upload (3 presigned parts)"],
  ]) {
    await scenario(`${what} from a page of another origin, ETag read by the page`, async () => {
      const r = await upload(page, method);
      expectEq(`${method}: page's report`, r, { key: `${method}/photo.bin`, etag: want[method], error: null });
      const got = await stored("web", r.key);
      expectEq(`${method}: stored bytes (SDK)`, [got.length, md5(got)], [body.length, md5(body)]);
    });
  }
  await scenario("the page lists the bucket", async () => {
    await page.waitForFunction(() => document.body.dataset.listed === "3", { timeout: 30_000 });
    const keys = await page.$$eval("#objects tr td:first-child", (tds) => tds.map((t) => t.textContent));
    expectEq("listed keys", keys, ["multipart/photo.bin", "post/photo.bin", "put/photo.bin"]);
    const shot = process.env.KALIGON_SCREENSHOT;
    if (shot) {
      mkdirSync(path.dirname(shot), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
    }
  });

  await scenario("the same page against a bucket without CORS fails in the browser", async () => {
    const p = await openPage("web-nocors");
    for (const method of ["put", "post", "multipart"]) {
      const r = await upload(p, method);
      if (!r.error || r.etag) throw new Error(`${method} without CORS: the page saw success ${JSON.stringify(r)}`);
    }
    // The PUT's preflight was refused, so the browser never sent it.
    const e = await s3.send(new HeadObjectCommand({ Bucket: "web-nocors", Key: "put/photo.bin" })).catch((x) => x);
    expectEq("presigned PUT never sent", e?.$metadata?.httpStatusCode, 404);
    await p.click("#list");
    await p.waitForFunction(() => document.body.dataset.listed === "error", { timeout: 30_000 });
  });
} finally {
  await browser.close();
  server.close();
}

const out = process.env.KALIGON_LANE_OUT;
if (out) {
  const client = "Chromium (headless), puppeteer-core, examples/upload";
  writeFileSync(out, JSON.stringify({ client, version: VERSION, via: "direct", scenarios }, null, 1));
}
console.log(`${LABEL} ${scenarios.length} scenarios passed`);
