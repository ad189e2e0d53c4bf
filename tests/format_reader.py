#!/usr/bin/env python3
"""Independent reader for Kaligon data directories, written from docs/FORMAT.md alone.

Usage:
    python3 tests/format_reader.py DIR [DIR...]   # JSON lines, one per version
    python3 tests/format_reader.py --check-fixtures
    python3 tests/format_reader.py --dump DIR     # debug: every record the scan sees

It never writes to the data directories (unlike `recover()`, it does not delete
`*.prep` files, FORMAT.md §2.2 and §14 item 12). Standard library only.
"""

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

# ---------------------------------------------------------------- XXH64 (§3)
M64 = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P4, P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5

def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64

def _round(acc, lane):
    return (_rotl((acc + lane * P2) & M64, 31) * P1) & M64

def xxh64(data, seed=0):
    """XXH64 from the public algorithm; every Kaligon checksum uses seed 0 (§3)."""
    n, i = len(data), 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64
        end = n - n % 32
        for a, b, c, d in struct.iter_unpack("<4Q", memoryview(data)[:end]):
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
        i = end
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & M64
        for v in (v1, v2, v3, v4):
            h = ((h ^ _round(0, v)) * P1 + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h = ((h ^ (h >> 33)) * P2) & M64
    h = ((h ^ (h >> 29)) * P3) & M64
    return h ^ (h >> 32)

# ------------------------------------------------------- constants (§3, §4)
ALIGN, FORMAT_VERSION, CHUNK = 4096, 1, 1 << 20      # CHUNK_PAYLOAD_BYTES
SEGMENT_MAGIC, CKPT_MAGIC, RECORD_MAGIC = b"KLGNSEG1", b"KLGNCKP1", 0x31524C4B
CHUNK_STRIDE = (CHUNK + 40 + 4095) & ~4095            # 1 MiB + 4096
KIND_DATA, KIND_META = 1, 2

def align_up(n):
    return (n + 4095) & ~4095

def packed_len(payload_len):
    return (40 + payload_len + 7) & ~7

class DecodeError(Exception):
    pass

class NewerFormat(Exception):
    """§12: a newer FORMAT_VERSION is refused, not read as damage."""

# --------------------------------------------------- tagged-field codec (§6)
class Reader:
    """Scalars, strings and bytes inside one field body (§6 table)."""

    def __init__(self, buf):
        self.buf, self.pos = bytes(buf), 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise DecodeError("truncated")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self): return self.take(1)[0]
    def u32(self): return struct.unpack("<I", self.take(4))[0]
    def u64(self): return struct.unpack("<Q", self.take(8))[0]
    def i64(self): return struct.unpack("<q", self.take(8))[0]
    def u128(self): return int.from_bytes(self.take(16), "little")
    def bytes_(self): return self.take(self.u32())

    def string(self):
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("string is not UTF-8")

def fields(body):
    """Split a structure into (tag, Reader) pairs; it ends where the body ends (§6)."""
    out, pos = [], 0
    while pos < len(body):
        if pos + 5 > len(body):
            raise DecodeError("truncated field header")
        tag, ln = body[pos], struct.unpack_from("<I", body, pos + 1)[0]
        if pos + 5 + ln > len(body):
            raise DecodeError("truncated field body")
        out.append((tag, Reader(body[pos + 5:pos + 5 + ln])))
        pos += 5 + ln
    return out

def checksum(r):
    """§8.6: u8 algorithm (1..5, else DecodeError), bytes value, u32 parts."""
    algo = r.u8()
    if algo not in (1, 2, 3, 4, 5):
        raise DecodeError("unknown ChecksumAlgo %d" % algo)
    return {"algorithm": algo, "value": r.bytes_().hex(), "parts": r.u32()}

META_ONE = {10: "content_type", 11: "content_encoding", 12: "content_disposition",
            13: "content_language", 14: "cache_control", 15: "expires",
            19: "storage_class", 27: "owner"}
META_FN = {17: ("checksum", checksum), 25: ("completed_upload", Reader.u128),
           28: ("acl", Reader.bytes_)}
META_LIST = {16: ("user_meta", lambda r: [r.string(), r.string()]),
             18: ("tags", lambda r: [r.string(), r.string()]),
             20: ("part_sizes", Reader.u64), 26: ("part_checksums", lambda r: r.bytes_().hex())}

def object_meta(tag, r, meta):
    """§8.2 ObjectMeta fields (strings, checksum, lists); unknown tags are skipped."""
    if tag in META_ONE:
        meta[META_ONE[tag]] = r.string()
    elif tag in META_FN:
        meta[META_FN[tag][0]] = META_FN[tag][1](r)
    elif tag in META_LIST:
        meta.setdefault(META_LIST[tag][0], []).append(META_LIST[tag][1](r))

def etag16(r):
    """F_ETAG's MD5 must be exactly 16 bytes (§8.1, §8.3)."""
    md5 = r.bytes_()
    if len(md5) != 16:
        raise DecodeError("ETag MD5 is not 16 bytes")
    return md5

def extent(r):
    return (r.u64(), r.u64(), r.u64())  # segment, offset of first header, payload len (§5)

def version(body):
    """§8.1 Version structure (tags 1-7, rest ObjectMeta)."""
    v = {"id": 0, "seq": 0, "mtime": 0, "size": 0, "md5": bytes(16), "parts": 0,
         "delete_marker": False, "extents": [], "meta": {}}
    for tag, r in fields(body):
        if tag == 1: v["id"] = r.u128()
        elif tag == 2: v["seq"] = r.u64()
        elif tag == 3: v["mtime"] = r.i64()
        elif tag == 4: v["size"] = r.u64()
        elif tag == 5: v["md5"], v["parts"] = etag16(r), r.u32()
        elif tag == 6: v["delete_marker"] = True
        elif tag == 7: v["extents"].append(extent(r))
        else: object_meta(tag, r, v["meta"])
    return v

def part(body):
    """§8.3 Part structure."""
    p = {"size": 0, "md5": bytes(16), "mtime": 0, "extents": []}
    for tag, r in fields(body):
        if tag == 4: p["size"] = r.u64()
        elif tag == 5: p["md5"] = etag16(r)
        elif tag == 3: p["mtime"] = r.i64()
        elif tag == 7: p["extents"].append(extent(r))
        elif tag == 17: p["checksum"] = checksum(r)
    return p

def upload(body):
    """§8.4 Upload header structure."""
    u = {"id": 0, "meta": {}}
    for tag, r in fields(body):
        if tag == 21: u["id"] = r.u128()
        elif tag == 22: u["initiated"] = r.i64()
        elif tag == 23: u["initiator"] = r.string()
        elif tag == 24:
            algo, full = r.u8(), r.u8()
            if algo not in (1, 2, 3, 4, 5):
                raise DecodeError("unknown ChecksumAlgo %d" % algo)
            u["checksum"] = (algo, full != 0)
        else: object_meta(tag, r, u["meta"])
    return u

def bucket_state(body):
    """§8.5 BucketState structure."""
    s = {"owner": "", "created": 0, "versioning": 0, "configs": []}
    for tag, r in fields(body):
        if tag == 30: s["owner"] = r.string()
        elif tag == 31: s["created"] = r.i64()
        elif tag == 32:
            s["versioning"] = r.u8()
            if s["versioning"] > 2:
                raise DecodeError("unknown Versioning")
        elif tag == 33: s["configs"].append((r.string(), r.bytes_()))
    return s

TOP = {1: ("bucket", Reader.string), 2: ("key", Reader.string),
       3: ("version", lambda r: version(r.buf)), 4: ("version_id", Reader.u128),
       5: ("state", lambda r: bucket_state(r.buf)), 6: ("upload", lambda r: upload(r.buf)),
       7: ("upload_id", Reader.u128), 8: ("part_number", Reader.u32),
       9: ("part", lambda r: part(r.buf)), 10: ("user", Reader.string), 11: ("hour", Reader.u32),
       12: ("usage", lambda r: [r.u64() for _ in range(6)])}
REQUIRED = {1: ("key", "version"), 2: ("key", "version_id"), 3: ("state",), 4: (),
            5: ("key", "upload"), 6: ("key", "upload_id", "part_number", "part"),
            7: ("key", "upload_id"), 8: ("key", "upload_id", "version"),
            9: ("user", "hour", "usage")}

def meta_op(payload):
    """§7: opcode byte + top-level fields. Unknown opcode / missing field -> DecodeError."""
    if not payload:
        raise DecodeError("empty meta payload")
    op = payload[0]
    if op not in REQUIRED:
        raise DecodeError("unknown opcode %d" % op)
    rec = {"op": op}
    for tag, r in fields(payload[1:]):
        if tag in TOP:  # known fields are decoded even when the op ignores them (§7.1)
            name, fn = TOP[tag]
            rec[name] = fn(r)
    for name in ("bucket",) + REQUIRED[op]:
        if name not in rec:
            raise DecodeError("op %d lacks %s" % (op, name))
    return rec

# ------------------------------------------------------------ the index (§7.1)
class Index:
    """The shard index and the replay semantics of each opcode (§7.1)."""

    def __init__(self):
        self.buckets, self.usage = {}, {}
        self.keys = {}      # (bucket, key) -> {version id: Version}
        self.uploads = {}   # (bucket, key, upload id) -> {"header": ..., "parts": {}}

    def put_version(self, b, k, v):
        self.keys.setdefault((b, k), {})[v["id"]] = v

    def apply(self, r):
        op, b = r["op"], r["bucket"]
        if op == 1:
            self.put_version(b, r["key"], r["version"])
        elif op == 2:
            self.keys.get((b, r["key"]), {}).pop(r["version_id"], None)
        elif op == 3:
            self.buckets[b] = r["state"]
        elif op == 4:
            self.buckets.pop(b, None)
            self.usage = {k: v for k, v in self.usage.items() if k[0] != b}
        elif op == 5:
            self.uploads.setdefault((b, r["key"], r["upload"]["id"]),
                                    {"header": r["upload"], "parts": {}})
        elif op == 6:
            up = self.uploads.get((b, r["key"], r["upload_id"]))
            if up is not None:
                up["parts"][r["part_number"]] = r["part"]
        elif op == 7:
            self.uploads.pop((b, r["key"], r["upload_id"]), None)
        elif op == 8:
            self.uploads.pop((b, r["key"], r["upload_id"]), None)
            self.put_version(b, r["key"], r["version"])
        elif op == 9:
            self.usage[(b, r["user"], r["hour"])] = r["usage"]

# ---------------------------------------------------------- segments (§4, §2.2)
def parse_u64(s):
    """Rust u64::from_str: optional '+', then ASCII digits only (§2.2, §14 item 13)."""
    digits = s[1:] if s.startswith("+") else s
    if not digits or not all("0" <= c <= "9" for c in digits) or int(digits) > M64:
        return None
    return int(digits)

def list_segments(shard_dir):
    """§2.2: every `seg-<u64>` name, sorted by number; *.prep is ignored, not deleted."""
    segs = {}
    for name in os.listdir(shard_dir):
        if name.startswith("seg-") and parse_u64(name[4:]) is not None:
            segs[parse_u64(name[4:])] = os.path.join(shard_dir, name)
    return dict(sorted(segs.items()))

def segment_header_ok(buf, seg_id):
    """§4.1: magic, checksum, version == 1, id == name. Newer version refuses (§12)."""
    if len(buf) < 40 or buf[:8] != SEGMENT_MAGIC:
        return False
    if xxh64(buf[:32]) != struct.unpack_from("<Q", buf, 32)[0]:
        return False
    ver, _shard, sid = struct.unpack_from("<IIQ", buf, 8)
    if ver > FORMAT_VERSION:
        raise NewerFormat("segment %d has format version %d" % (seg_id, ver))
    return ver == FORMAT_VERSION and sid == seg_id

def record_header(buf, off):
    """§4.3 RecordHeader::decode -> 'zero', None (Corrupt) or a dict."""
    if off + 40 > len(buf):
        return None
    magic, kind, pad, plen, seg_low, seq, psum, hsum = struct.unpack_from("<IB3sIIQQQ", buf, off)
    if magic == 0:
        return "zero"
    if (magic != RECORD_MAGIC or xxh64(buf[off:off + 32]) != hsum or pad != b"\0\0\0"
            or kind not in (KIND_DATA, KIND_META) or (kind == KIND_DATA and plen > CHUNK)):
        return None
    return {"kind": kind, "len": plen, "seg_low": seg_low, "seq": seq, "psum": psum}

def scan_segment(buf, seg_id, start, last_seq, deliver):
    """§10.3: walk one segment's records from `start`; returns the last accepted seq."""
    low, off, n = seg_id & 0xFFFFFFFF, start, len(buf)

    def fresh(h, at):
        return (isinstance(h, dict) and h["seg_low"] == low
                and (last_seq is None or h["seq"] > last_seq)
                and at + packed_len(h["len"]) <= n + 7)

    while off + 40 <= n:
        h = record_header(buf, off)
        if fresh(h, off):
            payload = buf[off + 40:off + 40 + h["len"]]
            deliver(off, h, payload, xxh64(payload) == h["psum"])
            last_seq = h["seq"]
            off += packed_len(h["len"])
        elif h == "zero" and off % ALIGN:
            off = align_up(off)
        elif h == "zero":
            break
        else:  # resync: next 4096 boundary with a decodable, right-segment, newer header
            for b in range(align_up(off + 1), n - 39, ALIGN):
                g = record_header(buf, b)
                if isinstance(g, dict) and g["seg_low"] == low and (
                        last_seq is None or g["seq"] > last_seq):
                    off = b
                    break
            else:
                break
    return last_seq

# ----------------------------------------------------------- checkpoints (§9)
def list_checkpoints(shard_dir):
    """§2.2: `ckpt-*` except *.tmp and ckpt-reserve, newest (largest name) first."""
    names = [n for n in os.listdir(shard_dir) if n.startswith("ckpt-")
             and not n.endswith(".tmp") and n != "ckpt-reserve"]
    return sorted(names, reverse=True)

def decode_checkpoint(buf, shard_id):
    """§9.1 decode order: length, checksum, magic+version, shard id, every entry."""
    if len(buf) < 48:
        raise DecodeError("shorter than 48 bytes")
    if xxh64(buf[:-8]) != struct.unpack_from("<Q", buf, len(buf) - 8)[0]:
        raise DecodeError("checksum")
    ver = struct.unpack_from("<I", buf, 8)[0]
    if buf[:8] != CKPT_MAGIC or ver != FORMAT_VERSION:
        if buf[:8] == CKPT_MAGIC and ver > FORMAT_VERSION:
            raise NewerFormat("checkpoint has format version %d" % ver)
        raise DecodeError("format")
    shard, next_seq, rseg, roff = struct.unpack_from("<IQQQ", buf, 12)
    if shard != shard_id:
        raise DecodeError("wrong shard")
    entries, pos, end = [], 40, len(buf) - 8
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("entry length outside the body")
        ln = struct.unpack_from("<I", buf, pos)[0]
        if pos + 4 + ln > end:
            raise DecodeError("entry outside the body")
        entries.append(meta_op(buf[pos + 4:pos + 4 + ln]))
        pos += 4 + ln
    return next_seq, (rseg, roff), entries

# ------------------------------------------------------------- recovery (§10)
def record_readable(segs, seg_id, off, ln):
    """§10.2 DataRecords::there / §11 checks: header, kind, segment_low, length, payload."""
    path = segs.get(seg_id)
    if path is None:
        return "segment %d missing" % seg_id
    with open(path, "rb") as f:
        f.seek(off)
        buf = f.read(40 + ln)
    h = record_header(buf, 0)
    if not isinstance(h, dict):
        return "record header at %d:%d does not decode" % (seg_id, off)
    if h["kind"] != KIND_DATA or h["len"] != ln or h["seg_low"] != seg_id & 0xFFFFFFFF:
        return "record at %d:%d is not the expected data record" % (seg_id, off)
    if xxh64(buf[40:40 + ln]) != h["psum"]:
        return "payload checksum fails at %d:%d" % (seg_id, off)
    return None

def extent_records(ext):
    """§5: record i of a run at offset + i*stride, min(len - i MiB, 1 MiB) bytes."""
    seg, off, ln = ext
    count = max((ln + CHUNK - 1) // CHUNK, 1)
    return [(seg, off + i * CHUNK_STRIDE, min(ln - i * CHUNK, CHUNK)) for i in range(count)]

def recover_shard(shard_dir, shard_id, dump=False):
    """§10.1 choose the start, §10.2/§10.3 replay. Returns (Index, segments, stats)."""
    stats = dict.fromkeys(("damaged_checkpoints", "corrupt_payloads", "undecodable_ops",
                           "incomplete_ops", "applied"), 0)
    log = print if dump else (lambda *a: None)
    segs, index, next_seq, start = list_segments(shard_dir), Index(), 0, None
    for name in list_checkpoints(shard_dir):  # newest first; first that decodes wins
        with open(os.path.join(shard_dir, name), "rb") as f:
            buf = f.read()
        try:
            next_seq, start, entries = decode_checkpoint(buf, shard_id)
        except DecodeError as e:
            stats["damaged_checkpoints"] += 1
            log("checkpoint %s unusable: %s" % (name, e))
            continue
        for r in entries:  # applied as-is: §9.2 names no data check for entries
            index.apply(r)
        stats["checkpoint"] = name
        break
    if start is None:  # §10.1 step 3: no checkpoint: empty index, first segment
        start = (next(iter(segs), 0), ALIGN)
    last_seq = next_seq - 1 if next_seq else None
    present = set()  # (segment, offset, payload_len) of data records seen in replay

    def is_present(rec):
        if (rec[0], rec[1]) >= start:
            return rec in present
        return record_readable(segs, *rec) is None  # DataRecords::there

    def deliver(seg_id, off, h, payload, ok):
        where = "%d:%#x seq %d %s" % (seg_id, off, h["seq"], "Data" if h["kind"] == 1 else "Meta")
        if not ok:  # skipped by its verified length; seq still counts (§10.2)
            stats["corrupt_payloads"] += 1
            return log(where, "len %d: PAYLOAD CHECKSUM FAILS" % h["len"])
        if h["kind"] == KIND_DATA:
            present.add((seg_id, off, h["len"]))
            return log(where, "len %d" % h["len"])
        try:
            r = meta_op(payload)
        except DecodeError as e:
            stats["undecodable_ops"] += 1
            return log(where, "undecodable: %s" % e)
        added = {1: lambda: r["version"]["extents"], 6: lambda: r["part"]["extents"]}
        exts = added.get(r["op"], lambda: [])()  # CompleteUpload is exempt
        missing = [rec for e in exts for rec in extent_records(e) if not is_present(rec)]
        log(where, "op %d %s %s%s" % (r["op"], r["bucket"], r.get("key", ""),
                                      " MISSING DATA %s" % missing if missing else ""))
        if missing:
            stats["incomplete_ops"] += 1
        else:
            index.apply(r)
            stats["applied"] += 1

    for seg_id, path in segs.items():
        if seg_id < start[0]:
            continue
        with open(path, "rb") as f:
            buf = f.read()
        if not segment_header_ok(buf, seg_id):
            log("segment %d: header missing or damaged; skipped" % seg_id)
            continue
        last_seq = scan_segment(buf, seg_id, start[1] if seg_id == start[0] else ALIGN,
                                last_seq, lambda *a, s=seg_id: deliver(s, *a))
    return index, segs, stats

# ------------------------------------------------------ listing (§11, §2)
def shard_dirs(data_dirs):
    """§2.1: shard i lives in data[i % len(data)]/shard-{i:03}; count from kaligon-layout."""
    with open(os.path.join(data_dirs[0], "kaligon-layout")) as f:
        text = f.read().strip()
    n = parse_u64(text[len("shards="):]) if text.startswith("shards=") else None
    if not n:
        raise SystemExit("unparseable kaligon-layout")
    return [(i, os.path.join(data_dirs[i % len(data_dirs)], "shard-%03d" % i)) for i in range(n)]

def read_version(segs, v):
    """§11: follow every record of every extent; verify each. Returns (md5 hex, error)."""
    md5, total = hashlib.md5(), 0
    for ext in v["extents"]:
        for seg, off, ln in extent_records(ext):
            err = record_readable(segs, seg, off, ln)
            if err:
                return None, err
            with open(segs[seg], "rb") as f:
                f.seek(off + 40)
                md5.update(f.read(ln))
            total += ln
    if total != v["size"]:
        return None, "extents hold %d bytes, size is %d" % (total, v["size"])
    return md5.hexdigest(), None

def version_id_text(vid):
    """§8.1: 32 lowercase hex digits; id 0 is the null version, shown by S3 as "null"."""
    return "null" if vid == 0 else "%032x" % vid

def listing(data_dirs):
    """Recover every shard (§2.1, §10) and list each key's versions, newest first (§7.1)."""
    rows = []
    for shard_id, d in shard_dirs(data_dirs):
        if not os.path.isdir(d):
            continue
        index, segs, _ = recover_shard(d, shard_id)
        for (b, k) in sorted(index.keys):
            vs = sorted(index.keys[(b, k)].values(), key=lambda v: v["seq"], reverse=True)
            for v in vs:
                row = {"bucket": b, "key": k, "version_id": version_id_text(v["id"]),
                       "delete_marker": v["delete_marker"], "size": v["size"],
                       "etag": None, "md5": None}
                if not v["delete_marker"]:
                    row["etag"] = '"%s%s"' % (v["md5"].hex(),
                                              "-%d" % v["parts"] if v["parts"] else "")
                    row["md5"], err = read_version(segs, v)
                    if err:
                        row["error"] = err
                rows.append(row)
    return rows

# ------------------------------------------------------- --check-fixtures
def seed_md5(seed, size):
    return hashlib.md5(bytes((j * 31 + seed * 7) % 251 for j in range(size))).hexdigest()

def check_fixture(name, root):
    """Compare one fixture's listing with tests/fixtures/<name>.json; returns problems."""
    with open(os.path.join(root, name + ".json")) as f:
        spec = json.load(f)
    tmp = tempfile.mkdtemp(prefix="kfmt-")
    try:  # a copy, so nothing can touch the checked-in bytes
        shutil.copytree(os.path.join(root, name), os.path.join(tmp, name))
        rows = listing([os.path.join(tmp, name)])
    finally:
        shutil.rmtree(tmp)
    got = {(r["bucket"], r["key"], r["version_id"]): r for r in rows}
    damaged = {(d["bucket"], d["key"]) for d in spec.get("damaged", [])}
    problems = []
    for o in spec["objects"]:
        ident = (o["bucket"], o["key"], o["version_id"])
        r = got.pop(ident, None)
        if r is None:
            problems.append("missing %s" % (ident,))
        elif o.get("delete_marker"):
            if not r["delete_marker"]:
                problems.append("%s should be a delete marker" % (ident,))
        elif (o["bucket"], o["key"]) in damaged:
            if "payload checksum" not in r.get("error", ""):
                problems.append("%s should fail its payload checksum: %s" % (ident, r))
        elif (r["delete_marker"] or r["size"] != o["size"] or r["etag"] != o["etag"]
              or r.get("error") or r["md5"] != seed_md5(o["seed"], o["size"])
              or o["etag"].strip('"') != r["md5"]):
            problems.append("%s wrong: %s" % (ident, r))
    for ident in got:
        problems.append("unexpected %s" % (ident,))
    for o in spec.get("lost", []):
        if any(r["bucket"] == o["bucket"] and r["key"] == o["key"] for r in rows):
            problems.append("lost write %s/%s is listed" % (o["bucket"], o["key"]))
    return problems

def check_fixtures():
    """--check-fixtures: xxh64 test vectors, then the four fixtures (exit 1 on a mismatch)."""
    for data, want in ((b"", 0xEF46DB3751D8E999), (b"a", 0xD24EC4F1A98C6E5B),
                       (b"abc", 0x44BC2CF5AD770999), (b"hello", 0x26C7827D889F6DA3)):
        assert xxh64(data) == want, data
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    failed = False
    for name in ("clean", "damaged-checkpoint", "torn", "flipped"):
        problems = check_fixture(name, root)
        print("%-20s %s" % (name, "ok" if not problems else "FAIL"))
        for p in problems:
            print("    " + p)
        failed |= bool(problems)
    return 1 if failed else 0

def main(argv):
    if argv == ["--check-fixtures"]:
        return check_fixtures()
    if len(argv) == 2 and argv[0] == "--dump":
        for shard_id, d in shard_dirs([argv[1]]):
            _, _, stats = recover_shard(d, shard_id, dump=True)
            print(json.dumps(stats))
        return 0
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        for row in listing(argv):
            print(json.dumps(row))
    except NewerFormat as e:
        print("refusing: %s" % e, file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
