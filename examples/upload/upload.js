// Uploads from a web page straight to an S3 endpoint: presigned PUT, POST
// policy form and multipart upload of presigned parts, plus a listing. Plain
// fetch/XMLHttpRequest and WebCrypto; no SDK, no build step.
//
// Settings come from the form or from the query string
// (?endpoint=…&bucket=…&accessKey=…&secretKey=…&region=…).

const $ = (id) => document.getElementById(id);
const PART_SIZE = 5 * 1024 * 1024; // S3's smallest part (all but the last)
const enc = new TextEncoder();

for (const [k, v] of new URLSearchParams(location.search)) {
  if ($(k)) $(k).value = v;
}

function settings() {
  const endpoint = new URL($("endpoint").value);
  return {
    endpoint,
    bucket: $("bucket").value,
    region: $("region").value || "us-east-1",
    accessKey: $("accessKey").value,
    secretKey: $("secretKey").value,
  };
}

// --- SigV4 (AWS General Reference, "Signature Version 4 signing process") ---

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (s) => hex(await crypto.subtle.digest("SHA-256", enc.encode(s)));

async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(msg));
}

async function signingKey(s, day) {
  let k = await hmac(enc.encode("AWS4" + s.secretKey), day);
  for (const part of [s.region, "s3", "aws4_request"]) k = await hmac(k, part);
  return k;
}

/** RFC 3986 encoding as SigV4 wants it. */
const uriEncode = (v) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

function stamp() {
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { amzDate, day: amzDate.slice(0, 8) };
}

/** A presigned URL (path style) for `method` on `key` (or the bucket). */
async function presign(s, method, key, query = {}, expires = 900) {
  const { amzDate, day } = stamp();
  const path = "/" + [s.bucket, ...(key ? key.split("/") : [])].map(uriEncode).join("/");
  const q = {
    ...query,
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": `${s.accessKey}/${day}/${s.region}/s3/aws4_request`,
    "X-Amz-Date": amzDate,
    "X-Amz-Expires": String(expires),
    "X-Amz-SignedHeaders": "host",
  };
  const canonicalQuery = Object.keys(q)
    .sort()
    .map((k) => `${uriEncode(k)}=${uriEncode(q[k])}`)
    .join("&");
  const request = [method, path, canonicalQuery, `host:${s.endpoint.host}`, "", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", amzDate, `${day}/${s.region}/s3/aws4_request`, await sha256(request)].join("\n");
  const signature = hex(await hmac(await signingKey(s, day), toSign));
  return `${s.endpoint.origin}${path}?${canonicalQuery}&X-Amz-Signature=${signature}`;
}

/** The fields of a POST policy form allowing `key` up to `maxBytes`. */
async function postFields(s, key, maxBytes) {
  const { amzDate, day } = stamp();
  const credential = `${s.accessKey}/${day}/${s.region}/s3/aws4_request`;
  const fields = {
    key,
    success_action_status: "201",
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-credential": credential,
    "x-amz-date": amzDate,
  };
  const policy = {
    expiration: new Date(Date.now() + 15 * 60 * 1000).toISOString(),
    conditions: [{ bucket: s.bucket }, ...Object.entries(fields).map(([k, v]) => ({ [k]: v })), ["content-length-range", 0, maxBytes]],
  };
  fields.policy = btoa(JSON.stringify(policy));
  fields["x-amz-signature"] = hex(await hmac(await signingKey(s, day), fields.policy));
  return fields;
}

// --- requests ---------------------------------------------------------------

/** An XMLHttpRequest with upload progress; resolves with the XHR when it is 2xx. */
function send(method, url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded, e.total);
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300 ? resolve(xhr) : reject(new Error(`${method} answered ${xhr.status}: ${xhr.responseText.slice(0, 200)}`));
    // A response the browser will not hand to the page (no CORS) ends here.
    xhr.onerror = () => reject(new Error(`${method} failed in the browser (network or CORS)`));
    xhr.send(body);
  });
}

const xmlText = (xml, tag) => new DOMParser().parseFromString(xml, "application/xml").getElementsByTagName(tag)[0]?.textContent;

function progress(done, total) {
  $("progress").max = total || 1;
  $("progress").value = done;
}

function report(method, key, etag, error) {
  const li = document.createElement("li");
  li.dataset.method = method;
  li.dataset.key = key;
  if (error) {
    li.className = "error";
    li.dataset.error = error.message;
    li.textContent = `${method} ${key}: ${error.message}`;
  } else {
    li.className = "ok";
    li.dataset.etag = etag;
    li.textContent = `${method} ${key}: stored, ETag ${etag}`;
  }
  $("results").append(li);
}

function chosenFile() {
  const f = $("file").files[0];
  if (!f) throw new Error("choose a file first");
  return f;
}

async function uploadPut(s, file) {
  const key = `put/${file.name}`;
  const xhr = await send("PUT", await presign(s, "PUT", key), file, progress);
  return { key, etag: xhr.getResponseHeader("ETag") };
}

async function uploadPost(s, file) {
  const key = `post/${file.name}`;
  const form = new FormData();
  for (const [k, v] of Object.entries(await postFields(s, key, file.size))) form.append(k, v);
  form.append("file", file);
  const xhr = await send("POST", `${s.endpoint.origin}/${uriEncode(s.bucket)}`, form, progress);
  return { key, etag: xmlText(xhr.responseText, "ETag") || xhr.getResponseHeader("ETag") };
}

async function uploadMultipart(s, file) {
  const key = `multipart/${file.name}`;
  const created = await send("POST", await presign(s, "POST", key, { uploads: "" }));
  const uploadId = xmlText(created.responseText, "UploadId");
  const parts = [];
  for (let n = 1, at = 0; at < file.size || n === 1; n++, at += PART_SIZE) {
    const url = await presign(s, "PUT", key, { partNumber: String(n), uploadId });
    const xhr = await send("PUT", url, file.slice(at, at + PART_SIZE), (done) => progress(at + done, file.size));
    parts.push(`<Part><PartNumber>${n}</PartNumber><ETag>${xhr.getResponseHeader("ETag")}</ETag></Part>`);
  }
  const done = `<CompleteMultipartUpload>${parts.join("")}</CompleteMultipartUpload>`;
  const xhr = await send("POST", await presign(s, "POST", key, { uploadId }), done);
  return { key, etag: xmlText(xhr.responseText, "ETag") };
}

async function list(s) {
  const xhr = await send("GET", await presign(s, "GET", "", { "list-type": "2" }));
  const doc = new DOMParser().parseFromString(xhr.responseText, "application/xml");
  const rows = [...doc.getElementsByTagName("Contents")].map((c) => {
    const tr = document.createElement("tr");
    for (const tag of ["Key", "Size", "ETag"]) {
      const td = document.createElement("td");
      td.textContent = c.getElementsByTagName(tag)[0]?.textContent ?? "";
      tr.append(td);
    }
    return tr;
  });
  $("objects").replaceChildren(...rows);
  document.body.dataset.listed = String(rows.length);
}

for (const [id, upload] of [["put", uploadPut], ["post", uploadPost], ["multipart", uploadMultipart]]) {
  $(id).addEventListener("click", async () => {
    let key = "?";
    try {
      const s = settings();
      const file = chosenFile();
      const r = await upload(s, file);
      key = r.key;
      report(id, r.key, r.etag);
      await list(s).catch(() => {});
    } catch (e) {
      report(id, key, null, e);
    }
  });
}

$("list").addEventListener("click", async () => {
  try {
    await list(settings());
  } catch (e) {
    report("list", "", null, e);
    document.body.dataset.listed = "error";
  }
});
