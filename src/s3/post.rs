//! PostObject: browser-based uploads with an HTML form ("POST Object" and
//! "Creating a POST policy" in the S3 documentation). The form's fields
//! come first and are read into memory (bounded); the file streams into the
//! log like a PutObject body. The signed policy says which fields may be
//! sent and with which values, until when, and how large the file may be.

use base64::Engine as _;
use serde_json::Value;

use super::error::{S3Error, S3ErrorCode};
use super::object::{self, Declared, Source};
use super::xml::{Xml, url_encode};
use super::{Req, now_ms};
use crate::auth::{self, FormFields};
use crate::engine::Condition;
use crate::http::conn::Conn;
use crate::http::form::{self, Field, Form};
use crate::http::head::Head;
use crate::http::response::Response;

/// Form fields before the file: AWS allows 20 KB of policy; the fields and
/// part heads around it get the same again.
const FIELDS_BYTES_MAX: usize = 40 << 10;

/// Fields the policy need not mention ("Creating a POST policy", Conditions).
fn exempt(name: &str) -> bool {
    matches!(name, "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file")
        || name.starts_with("x-ignore-")
}

/// The fields with lowercased names, in the order sent.
struct Fields(Vec<Field>);

impl FormFields for Fields {
    fn field(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|f| f.name == name).map(|f| f.value.as_str())
    }
}

fn denied(why: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, format!("Invalid according to Policy: {why}"))
}

fn bad_policy(why: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidPolicyDocument, format!("Invalid Policy: {why}"))
}

/// One policy condition.
#[derive(Debug, PartialEq)]
enum Rule {
    Eq { field: String, value: String },
    StartsWith { field: String, prefix: String },
    LengthRange { min: u64, max: u64 },
}

#[derive(Debug)]
struct Policy {
    expiration_ms: i64,
    /// Each rule with its JSON text, quoted back in refusals.
    rules: Vec<(Rule, String)>,
}

/// `2026-11-24T12:00:00Z` or with fractional seconds, UTC only.
pub(super) fn parse_iso8601(text: &str) -> Option<i64> {
    let t = text.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    let days = crate::auth::date::days_from_civil(y as i32, mo as u32, day as u32);
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000 + millis)
}

fn field_name(v: &Value) -> Option<String> {
    v.as_str()?.strip_prefix('$').map(str::to_ascii_lowercase)
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

impl Policy {
    fn parse(b64: &str) -> Result<Self, S3Error> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| bad_policy("Invalid base64 encoding of the policy"))?;
        let doc: Value = serde_json::from_slice(&raw).map_err(|_| bad_policy("Invalid JSON in the policy document"))?;
        let expiration =
            doc.get("expiration").and_then(Value::as_str).ok_or_else(|| bad_policy("Missing 'expiration'"))?;
        let expiration_ms = parse_iso8601(expiration).ok_or_else(|| bad_policy("Invalid 'expiration' value"))?;
        let conditions =
            doc.get("conditions").and_then(Value::as_array).ok_or_else(|| bad_policy("Missing 'conditions'"))?;
        let mut rules = Vec::new();
        for c in conditions {
            let text = c.to_string();
            match c {
                Value::Object(map) => {
                    if map.len() != 1 {
                        return Err(bad_policy(
                            "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.",
                        ));
                    }
                    for (k, v) in map {
                        let value = v.as_str().ok_or_else(|| bad_policy("Condition values must be strings"))?;
                        let field = k.strip_prefix('$').unwrap_or(k).to_ascii_lowercase();
                        rules.push((Rule::Eq { field, value: value.to_string() }, text.clone()));
                    }
                }
                Value::Array(items) => {
                    let op = items.first().and_then(Value::as_str).map(str::to_ascii_lowercase);
                    let rule = match (op.as_deref(), items.len()) {
                        (Some("eq"), 3) => Rule::Eq {
                            field: field_name(&items[1]).ok_or_else(|| bad_policy("Invalid field in 'eq'"))?,
                            value: items[2].as_str().ok_or_else(|| bad_policy("Invalid value in 'eq'"))?.into(),
                        },
                        (Some("starts-with"), 3) => Rule::StartsWith {
                            field: field_name(&items[1]).ok_or_else(|| bad_policy("Invalid field in 'starts-with'"))?,
                            prefix: items[2]
                                .as_str()
                                .ok_or_else(|| bad_policy("Invalid value in 'starts-with'"))?
                                .into(),
                        },
                        (Some("content-length-range"), 3) => {
                            let (min, max) = (number(&items[1]), number(&items[2]));
                            match (min, max) {
                                (Some(min), Some(max)) if min <= max => Rule::LengthRange { min, max },
                                _ => return Err(bad_policy("Invalid content-length-range")),
                            }
                        }
                        _ => return Err(bad_policy(&format!("Invalid condition {text}"))),
                    };
                    rules.push((rule, text));
                }
                _ => return Err(bad_policy(&format!("Invalid condition {text}"))),
            }
        }
        Ok(Policy { expiration_ms, rules })
    }

    /// Checks the fields (and the bucket) against every rule; returns the
    /// allowed file sizes.
    fn check(&self, fields: &Fields, bucket: &str, now_ms: i64) -> Result<(u64, u64), S3Error> {
        if now_ms > self.expiration_ms {
            return Err(denied("Policy expired."));
        }
        let value = |name: &str| if name == "bucket" { Some(bucket) } else { fields.field(name) };
        let mut range = (0, u64::MAX);
        for (rule, text) in &self.rules {
            let ok = match rule {
                Rule::Eq { field, value: want } => value(field).unwrap_or("") == want,
                Rule::StartsWith { field, prefix } => {
                    let v = value(field).unwrap_or("");
                    // Content-Type may list several types; each must match.
                    if field == "content-type" {
                        v.split(',').all(|t| t.trim().starts_with(prefix.as_str()))
                    } else {
                        v.starts_with(prefix.as_str())
                    }
                }
                Rule::LengthRange { min, max } => {
                    range = (*min, *max);
                    true
                }
            };
            if !ok {
                return Err(denied(format_args!("Policy Condition failed: {text}")));
            }
        }
        let covered = |name: &str| {
            self.rules
                .iter()
                .any(|(r, _)| matches!(r, Rule::Eq { field, .. } | Rule::StartsWith { field, .. } if field == name))
        };
        if let Some(extra) = fields.0.iter().find(|f| !exempt(&f.name) && !covered(&f.name)) {
            return Err(denied(format_args!("Extra input fields: {}", extra.name)));
        }
        Ok(range)
    }
}

/// Form fields that become the object's headers: content headers, user
/// metadata, checksums; and the ones whose features are not built, so the
/// same refusals as for PutObject apply.
fn as_headers(fields: &Fields) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in &fields.0 {
        let name = f.name.as_str();
        let header = match name {
            "content-type"
            | "cache-control"
            | "content-disposition"
            | "content-encoding"
            | "content-language"
            | "expires"
            | "content-md5" => name.to_string(),
            "acl" => "x-amz-acl".to_string(),
            n if n.starts_with("x-amz-meta-")
                || n.starts_with("x-amz-checksum-")
                || n.starts_with("x-amz-server-side-encryption")
                || n.starts_with("x-amz-object-lock-")
                || n == "x-amz-storage-class"
                || n == "x-amz-website-redirect-location" =>
            {
                n.to_string()
            }
            _ => continue,
        };
        out.push((header, f.value.clone()));
    }
    out
}

/// The key field with `${filename}` replaced by the file's name.
fn object_key(fields: &Fields, filename: Option<&str>) -> Result<String, S3Error> {
    let key = fields.field("key").ok_or_else(|| {
        object::invalid(
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
    })?;
    let name = filename.map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f)).unwrap_or("");
    let key = key.replace("${filename}", name);
    if key.is_empty() {
        return Err(object::invalid("User key must have a length greater than 0."));
    }
    Ok(key)
}

pub async fn post_object(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let boundary = req.head.header("content-type").and_then(form::boundary).ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::MalformedPOSTRequest,
            "The body of your POST request is not well-formed multipart/form-data.",
        )
    })?;
    req.continue_body(conn).await?;
    let mut form = Form::new(&boundary);
    let (fields, file) = form.fields(conn, &mut req.body, FIELDS_BYTES_MAX).await?;
    let fields =
        Fields(fields.into_iter().map(|f| Field { name: f.name.to_ascii_lowercase(), value: f.value }).collect());
    let policy_b64 = fields.field("policy");
    // A form without a policy is an anonymous upload: the bucket's ACL or
    // policy must let anyone write.
    req.user = match policy_b64 {
        Some(p) => auth::authenticate_post(&fields, p, req.ctx.users.as_ref(), &req.ctx.config.region)?,
        None if fields.field("x-amz-signature").is_some() || fields.field("signature").is_some() => {
            return Err(object::invalid("Bucket POST must contain a field named 'policy'."));
        }
        None => String::new(),
    };
    let bucket = req.bucket().to_string();
    let state = req.ctx.engine.bucket(&bucket).ok_or(S3ErrorCode::NoSuchBucket)?;
    req.allowed(&state, "s3:PutObject", super::access::Need::Bucket(super::access::Perm::Write), None)?;
    let key = object_key(&fields, file.filename.as_deref())?;
    // The policy's conditions on the key see it with ${filename} replaced.
    let (min, max) = match policy_b64 {
        Some(p) => {
            let mut checked = Fields(fields.0.clone());
            if let Some(f) = checked.0.iter_mut().find(|f| f.name == "key") {
                f.value = key.clone();
            }
            Policy::parse(p)?.check(&checked, &bucket, now_ms())?
        }
        None => (0, u64::MAX),
    };
    req.key = Some(key);
    object::check_key(req)?;
    // From here the form's fields are this request's headers, so the
    // object is described exactly as a PutObject with them would be.
    let form_head = Head { headers: as_headers(&fields), ..req.head.clone() };
    let original = std::mem::replace(&mut req.head, form_head);
    super::route::refuse_unsupported_headers(&req.head, super::route::Op::PutObject)?;
    let mut meta = object::object_meta(req)?;
    // The form's tag set is a Tagging document, not the header's query form.
    if let Some(doc) = fields.field("tagging") {
        let tags = super::tagging::parse_tagging(doc.as_bytes())?;
        meta.tags = super::tagging::validate(tags, super::tagging::OBJECT_TAGS_MAX, "Object")?;
    }
    let declared = Declared {
        content_md5: req.head.header("content-md5").map(object::decode_md5).transpose()?,
        checksum: super::checksum::expected(&req.head)?,
        ..Declared::default()
    };
    req.head = original;
    let limit = max.min(req.ctx.config.put_bytes_max);
    let received = object::receive(req, conn, Source::Form(form), declared, limit, None).await?;
    if received.size < min {
        return Err(S3ErrorCode::EntityTooSmall.into());
    }
    let resp = object::commit_object(req, received, meta, Condition::None).await?;
    Ok(answer(req, &fields, resp))
}

/// The answer the form asked for: a redirect, 201 with an XML body, 200, or
/// (by default) 204; every one carries the ETag and the object's URL.
fn answer(req: &Req<'_>, fields: &Fields, stored: Response) -> Response {
    let etag = stored.headers.iter().find(|(n, _)| n == "etag").map(|(_, v)| v.clone()).unwrap_or_default();
    let scheme = req.head.header("x-forwarded-proto").unwrap_or("http");
    let host = req.head.header("host").unwrap_or("localhost");
    let (bucket, key) = (req.bucket(), req.key());
    let location = format!("{scheme}://{host}/{bucket}/{}", url_encode(key).replace("%2F", "/"));
    let redirect = fields.field("success_action_redirect").or_else(|| fields.field("redirect"));
    let mut resp = match redirect.filter(|r| r.starts_with("http://") || r.starts_with("https://")) {
        Some(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let target =
                format!("{url}{sep}bucket={}&key={}&etag={}", url_encode(bucket), url_encode(key), url_encode(&etag));
            Response::new(303).header("location", target)
        }
        None => match fields.field("success_action_status") {
            Some("200") => Response::new(200),
            Some("201") => {
                let mut x = Xml::bare("PostResponse");
                x.elem("Location", &location).elem("Bucket", bucket).elem("Key", key).elem("ETag", &etag);
                Response::xml(201, x.finish("PostResponse"))
            }
            _ => Response::new(204),
        },
    };
    for (n, v) in &stored.headers {
        resp.set_header(n, v.clone());
    }
    if !resp.headers.iter().any(|(n, _)| n == "location") {
        resp.set_header("location", location);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(pairs.iter().map(|(n, v)| Field { name: n.to_string(), value: v.to_string() }).collect())
    }

    #[test]
    fn expiration_dates() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_iso8601("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_iso8601("2015-12-30T12:00:00.000Z"), Some(1_451_476_800_000));
        assert_eq!(parse_iso8601("2015-12-30T12:00:00"), None);
        assert_eq!(parse_iso8601("2015-13-30T12:00:00Z"), None);
    }

    #[test]
    fn conditions() {
        let p = Policy::parse(&b64(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [
            {"bucket": "b"}, ["starts-with", "$key", "user/"], ["eq", "$Content-Type", "image/png"],
            ["content-length-range", 10, "100"], {"x-amz-meta-a": "1"}]}"#))
        .unwrap();
        let ok = fields(&[("key", "user/x"), ("content-type", "image/png"), ("x-amz-meta-a", "1"), ("policy", "p")]);
        assert_eq!(p.check(&ok, "b", 0).unwrap(), (10, 100));
        assert_eq!(p.check(&ok, "other", 0).unwrap_err().code, S3ErrorCode::AccessDenied);
        let wrong_key = fields(&[("key", "admin/x"), ("content-type", "image/png"), ("x-amz-meta-a", "1")]);
        assert!(p.check(&wrong_key, "b", 0).unwrap_err().message.contains("starts-with"));
        let extra = fields(&[("key", "user/x"), ("content-type", "image/png"), ("x-amz-meta-a", "1"), ("acl", "x")]);
        assert!(p.check(&extra, "b", 0).unwrap_err().message.contains("Extra input fields: acl"));
        let ignored =
            fields(&[("key", "user/x"), ("content-type", "image/png"), ("x-amz-meta-a", "1"), ("x-ignore-z", "")]);
        assert!(p.check(&ignored, "b", 0).is_ok());
        assert!(p.check(&ok, "b", 1_893_456_000_001).unwrap_err().message.contains("expired"));
    }

    #[test]
    fn bad_documents() {
        for doc in [
            "not json",
            r#"{"conditions": []}"#,
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z"}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 5, 1]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["matches", "$key", "x"]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{"bucket": "b", "acl": "private"}]}"#,
        ] {
            assert_eq!(Policy::parse(&b64(doc)).unwrap_err().code, S3ErrorCode::InvalidPolicyDocument, "{doc}");
        }
        assert_eq!(Policy::parse("%%%").unwrap_err().code, S3ErrorCode::InvalidPolicyDocument);
    }

    #[test]
    fn keys() {
        let f = fields(&[("key", "uploads/${filename}")]);
        assert_eq!(object_key(&f, Some("C:\\photos\\cat.png")).unwrap(), "uploads/cat.png");
        assert!(object_key(&fields(&[]), None).is_err());
    }
}
