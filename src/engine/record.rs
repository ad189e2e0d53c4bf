//! Metadata records: the payload of a `Meta` record in the log, one change
//! to a shard's index each. Replaying them in log order over a checkpoint
//! rebuilds the index exactly; each is idempotent (an upsert or a removal by
//! id), so replaying one twice does no harm.
//!
//! Payload layout: one byte op code, then the op's tagged fields
//! (`engine::codec`). Op codes are part of the format; never reuse one.

use super::codec::{Dec, DecodeError, Enc};
use super::types::{BucketState, Extent, Part, Upload, UploadId, Usage, Version, VersionId};

const OP_PUT_VERSION: u8 = 1;
const OP_DELETE_VERSION: u8 = 2;
const OP_PUT_BUCKET: u8 = 3;
const OP_DELETE_BUCKET: u8 = 4;
const OP_CREATE_UPLOAD: u8 = 5;
const OP_PUT_PART: u8 = 6;
const OP_ABORT_UPLOAD: u8 = 7;
const OP_COMPLETE_UPLOAD: u8 = 8;
const OP_USAGE: u8 = 9;

const F_BUCKET: u8 = 1;
const F_KEY: u8 = 2;
const F_VERSION: u8 = 3;
const F_VERSION_ID: u8 = 4;
const F_STATE: u8 = 5;
const F_UPLOAD: u8 = 6;
const F_UPLOAD_ID: u8 = 7;
const F_PART_NUMBER: u8 = 8;
const F_PART: u8 = 9;
const F_USER: u8 = 10;
const F_HOUR: u8 = 11;
const F_USAGE: u8 = 12;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaOp {
    /// Adds a version of a key, replacing one with the same id (the null
    /// version is replaced this way).
    PutVersion { bucket: String, key: String, version: Version },
    /// Removes one version (or delete marker) of a key for good.
    DeleteVersion { bucket: String, key: String, id: VersionId },
    /// Creates a bucket or replaces its state (versioning, configuration).
    PutBucket { name: String, state: BucketState },
    /// Removes an empty bucket.
    DeleteBucket { name: String },
    /// Starts a multipart upload (no parts yet).
    CreateUpload { bucket: String, key: String, upload: Box<Upload> },
    /// Adds a part to an upload, replacing one with the same number.
    PutPart { bucket: String, key: String, upload: UploadId, number: u32, part: Part },
    /// Ends an upload without an object; its parts become dead.
    AbortUpload { bucket: String, key: String, upload: UploadId },
    /// Ends an upload with `version`, whose extents are those of the parts
    /// it names (the other parts become dead). One record, so a crash leaves
    /// either the upload or the object.
    CompleteUpload { bucket: String, key: String, upload: UploadId, version: Version },
    /// The meter of one bucket, user and hour, as absolute totals. Only
    /// checkpoints carry it (never the log), so nothing is counted twice.
    Usage { bucket: String, user: String, hour: u32, usage: Usage },
}

impl MetaOp {
    /// The bucket holding the key or upload this change is about (None for
    /// changes to a bucket itself).
    pub fn key_bucket(&self) -> Option<&str> {
        match self {
            MetaOp::PutVersion { bucket, .. }
            | MetaOp::DeleteVersion { bucket, .. }
            | MetaOp::CreateUpload { bucket, .. }
            | MetaOp::PutPart { bucket, .. }
            | MetaOp::AbortUpload { bucket, .. }
            | MetaOp::CompleteUpload { bucket, .. } => Some(bucket),
            MetaOp::PutBucket { .. } | MetaOp::DeleteBucket { .. } | MetaOp::Usage { .. } => None,
        }
    }

    /// The data this change makes live: a new version's or a part's extents.
    pub fn added_extents(&self) -> &[Extent] {
        match self {
            MetaOp::PutVersion { version, .. } | MetaOp::CompleteUpload { version, .. } => &version.extents,
            MetaOp::PutPart { part, .. } => &part.extents,
            _ => &[],
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        match self {
            MetaOp::PutVersion { bucket, key, version } => {
                e.u8(OP_PUT_VERSION);
                bucket_key(&mut e, bucket, key);
                e.field(F_VERSION, |e| version.encode(e));
            }
            MetaOp::DeleteVersion { bucket, key, id } => {
                e.u8(OP_DELETE_VERSION);
                bucket_key(&mut e, bucket, key);
                e.field(F_VERSION_ID, |e| {
                    e.u128(id.0);
                });
            }
            MetaOp::PutBucket { name, state } => {
                e.u8(OP_PUT_BUCKET);
                e.field(F_BUCKET, |e| {
                    e.str(name);
                });
                e.field(F_STATE, |e| state.encode(e));
            }
            MetaOp::DeleteBucket { name } => {
                e.u8(OP_DELETE_BUCKET);
                e.field(F_BUCKET, |e| {
                    e.str(name);
                });
            }
            MetaOp::CreateUpload { bucket, key, upload } => {
                e.u8(OP_CREATE_UPLOAD);
                bucket_key(&mut e, bucket, key);
                e.field(F_UPLOAD, |e| upload.encode_header(e));
            }
            MetaOp::PutPart { bucket, key, upload, number, part } => {
                e.u8(OP_PUT_PART);
                bucket_key(&mut e, bucket, key);
                upload_id(&mut e, *upload);
                e.field(F_PART_NUMBER, |e| {
                    e.u32(*number);
                });
                e.field(F_PART, |e| part.encode(e));
            }
            MetaOp::AbortUpload { bucket, key, upload } => {
                e.u8(OP_ABORT_UPLOAD);
                bucket_key(&mut e, bucket, key);
                upload_id(&mut e, *upload);
            }
            MetaOp::CompleteUpload { bucket, key, upload, version } => {
                e.u8(OP_COMPLETE_UPLOAD);
                bucket_key(&mut e, bucket, key);
                upload_id(&mut e, *upload);
                e.field(F_VERSION, |e| version.encode(e));
            }
            MetaOp::Usage { bucket, user, hour, usage } => {
                e.u8(OP_USAGE);
                e.field(F_BUCKET, |e| {
                    e.str(bucket);
                });
                e.field(F_USER, |e| {
                    e.str(user);
                });
                e.field(F_HOUR, |e| {
                    e.u32(*hour);
                });
                e.field(F_USAGE, |e| {
                    for v in usage.to_array() {
                        e.u64(v);
                    }
                });
            }
        }
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let op = d.u8()?;
        let (mut bucket, mut key, mut version, mut id, mut state) = (None, None, None, None, None);
        let (mut upload, mut upload_id, mut number, mut part) = (None, None, None, None);
        let (mut user, mut hour, mut usage) = (None, None, None);
        while !d.is_empty() {
            let (tag, mut f) = d.field()?;
            match tag {
                F_BUCKET => bucket = Some(f.string()?),
                F_KEY => key = Some(f.string()?),
                F_VERSION => version = Some(Version::decode(&mut f)?),
                F_VERSION_ID => id = Some(VersionId(f.u128()?)),
                F_STATE => state = Some(BucketState::decode(&mut f)?),
                F_UPLOAD => upload = Some(Box::new(Upload::decode_header(&mut f)?)),
                F_UPLOAD_ID => upload_id = Some(UploadId(f.u128()?)),
                F_PART_NUMBER => number = Some(f.u32()?),
                F_PART => part = Some(Part::decode(&mut f)?),
                F_USER => user = Some(f.string()?),
                F_HOUR => hour = Some(f.u32()?),
                F_USAGE => {
                    let mut a = [0u64; 6];
                    for v in &mut a {
                        *v = f.u64()?;
                    }
                    usage = Some(Usage::from_array(a));
                }
                _ => {}
            }
        }
        let bucket = bucket.ok_or(DecodeError)?;
        Ok(match op {
            OP_PUT_VERSION => {
                MetaOp::PutVersion { bucket, key: key.ok_or(DecodeError)?, version: version.ok_or(DecodeError)? }
            }
            OP_DELETE_VERSION => {
                MetaOp::DeleteVersion { bucket, key: key.ok_or(DecodeError)?, id: id.ok_or(DecodeError)? }
            }
            OP_PUT_BUCKET => MetaOp::PutBucket { name: bucket, state: state.ok_or(DecodeError)? },
            OP_DELETE_BUCKET => MetaOp::DeleteBucket { name: bucket },
            OP_CREATE_UPLOAD => {
                MetaOp::CreateUpload { bucket, key: key.ok_or(DecodeError)?, upload: upload.ok_or(DecodeError)? }
            }
            OP_PUT_PART => MetaOp::PutPart {
                bucket,
                key: key.ok_or(DecodeError)?,
                upload: upload_id.ok_or(DecodeError)?,
                number: number.ok_or(DecodeError)?,
                part: part.ok_or(DecodeError)?,
            },
            OP_ABORT_UPLOAD => {
                MetaOp::AbortUpload { bucket, key: key.ok_or(DecodeError)?, upload: upload_id.ok_or(DecodeError)? }
            }
            OP_COMPLETE_UPLOAD => MetaOp::CompleteUpload {
                bucket,
                key: key.ok_or(DecodeError)?,
                upload: upload_id.ok_or(DecodeError)?,
                version: version.ok_or(DecodeError)?,
            },
            OP_USAGE => MetaOp::Usage {
                bucket,
                user: user.ok_or(DecodeError)?,
                hour: hour.ok_or(DecodeError)?,
                usage: usage.ok_or(DecodeError)?,
            },
            _ => return Err(DecodeError),
        })
    }
}

fn bucket_key(e: &mut Enc, bucket: &str, key: &str) {
    e.field(F_BUCKET, |e| {
        e.str(bucket);
    });
    e.field(F_KEY, |e| {
        e.str(key);
    });
}

fn upload_id(e: &mut Enc, id: UploadId) {
    e.field(F_UPLOAD_ID, |e| {
        e.u128(id.0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::ETag;

    #[test]
    fn ops_round_trip() {
        let version = Version {
            id: VersionId(5),
            seq: 1,
            mtime_ms: 2,
            size: 0,
            etag: ETag::default(),
            delete_marker: true,
            extents: Box::new([]),
            meta: Default::default(),
        };
        let ops = [
            MetaOp::PutVersion { bucket: "b".into(), key: "k/é".into(), version: version.clone() },
            MetaOp::DeleteVersion { bucket: "b".into(), key: "k".into(), id: VersionId::NULL },
            MetaOp::PutBucket { name: "b".into(), state: BucketState::default() },
            MetaOp::DeleteBucket { name: "b".into() },
            MetaOp::CreateUpload {
                bucket: "b".into(),
                key: "k".into(),
                upload: Box::new(Upload {
                    id: UploadId(9),
                    initiated_ms: 1,
                    initiator: "AK".into(),
                    checksum: None,
                    meta: Default::default(),
                    parts: Default::default(),
                }),
            },
            MetaOp::PutPart {
                bucket: "b".into(),
                key: "k".into(),
                upload: UploadId(9),
                number: 3,
                part: Part { size: 1, md5: [1; 16], mtime_ms: 2, checksum: None, extents: Box::new([]) },
            },
            MetaOp::AbortUpload { bucket: "b".into(), key: "k".into(), upload: UploadId(9) },
            MetaOp::CompleteUpload {
                bucket: "b".into(),
                key: "k".into(),
                upload: UploadId(9),
                version: version.clone(),
            },
        ];
        for op in ops {
            assert_eq!(MetaOp::decode(&op.encode()).unwrap(), op);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(MetaOp::decode(&[]).is_err());
        assert!(MetaOp::decode(&[9, 1, 0, 0, 0]).is_err());
        let good = MetaOp::DeleteBucket { name: "b".into() }.encode();
        for n in 0..good.len() {
            assert!(MetaOp::decode(&good[..n]).is_err() || n == good.len());
        }
    }
}
