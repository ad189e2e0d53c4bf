//! Cross-origin resource sharing (AWS S3 API reference: PutBucketCors,
//! GetBucketCors, DeleteBucketCors; user guide "Using cross-origin resource
//! sharing (CORS)").
//!
//! A bucket's rules are one of its configuration documents, stored as the
//! validated document re-written in canonical form. Browsers send the
//! preflight (`OPTIONS`) unauthenticated; it is answered from the first rule
//! that allows the origin, the method and every requested header. Every
//! other response to a request carrying `Origin` gets the headers of the
//! first rule matching origin and method, errors included, so a page can
//! read the status, the ETag and whatever else the rule exposes.

use super::error::{S3Error, S3ErrorCode};
use super::object::read_small_body;
use super::xml::{Node, Xml};
use super::{Req, bucket};
use crate::http::conn::Conn;
use crate::http::head::Head;
use crate::http::response::Response;

/// The bucket configuration document's name.
const CONFIG: &str = "cors";
/// AWS's limits: 100 rules, a 64 KB document, 255-character rule ids.
const RULES_MAX: usize = 100;
const CORS_BODY_BYTES_MAX: usize = 64 << 10;
const ID_CHARS_MAX: usize = 255;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
     Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted \
     by the resource's CORS spec.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: Option<String>,
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    /// Lower-cased: header names match without regard to case.
    pub headers: Vec<String>,
    pub expose: Vec<String>,
    pub max_age: Option<u64>,
}

impl Rule {
    fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| wildcard_match(o, origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        self.headers.iter().any(|h| wildcard_match(h, header))
    }

    /// What `Access-Control-Allow-Origin` says: `*` for a rule open to any
    /// origin, else the requester's origin (and then credentials are allowed).
    fn allow_origin<'a>(&self, origin: &'a str) -> Option<&'a str> {
        (!self.origins.iter().any(|o| o == "*")).then_some(origin)
    }
}

/// `pattern` with at most one `*`, which stands for any run of characters.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post),
    }
}

fn invalid(msg: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg)
}

fn one_wildcard(what: &str, v: &str) -> Result<(), S3Error> {
    if v.matches('*').count() > 1 {
        return Err(invalid(format!("{what} \"{v}\" can not have more than one wildcard.")));
    }
    Ok(())
}

/// A `CORSConfiguration` document, validated as AWS validates it.
pub fn parse(body: &[u8]) -> Result<Vec<Rule>, S3Error> {
    let root = super::xml::parse(body)?;
    if root.name != "CORSConfiguration" {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    let rules: Vec<&Node> = root.all("CORSRule").collect();
    if rules.is_empty() || root.children.iter().any(|c| c.name != "CORSRule") {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    if rules.len() > RULES_MAX {
        return Err(invalid(format!("The CORS configuration can hold at most {RULES_MAX} rules")));
    }
    rules.into_iter().map(parse_rule).collect()
}

fn parse_rule(n: &Node) -> Result<Rule, S3Error> {
    let texts = |name: &str| n.all(name).map(|c| c.text.trim().to_string()).collect::<Vec<_>>();
    let known = ["ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader", "MaxAgeSeconds"];
    if n.children.iter().any(|c| !known.contains(&c.name.as_str()) || c.name != "ID" && !c.children.is_empty()) {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    let rule = Rule {
        id: n.text_of("ID").map(str::to_owned),
        origins: texts("AllowedOrigin"),
        methods: texts("AllowedMethod"),
        headers: texts("AllowedHeader").into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        expose: texts("ExposeHeader"),
        max_age: match n.text_of("MaxAgeSeconds") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| S3Error::from(S3ErrorCode::MalformedXML))?),
        },
    };
    if rule.origins.is_empty() || rule.methods.is_empty() || n.all("ID").count() > 1 {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    if rule.id.as_ref().is_some_and(|id| id.chars().count() > ID_CHARS_MAX) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "ID length should not exceed allowed limit of 255",
        ));
    }
    if let Some(m) = rule.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
        return Err(invalid(format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}")));
    }
    for o in &rule.origins {
        if o.is_empty() {
            return Err(S3ErrorCode::MalformedXML.into());
        }
        one_wildcard("AllowedOrigin", o)?;
    }
    for h in &rule.headers {
        one_wildcard("AllowedHeader", h)?;
    }
    if let Some(h) = rule.expose.iter().find(|h| h.contains('*')) {
        return Err(invalid(format!(
            "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
        )));
    }
    Ok(rule)
}

/// The canonical document GetBucketCors returns (same rules, same order).
pub fn to_xml(rules: &[Rule]) -> String {
    let mut x = Xml::new("CORSConfiguration");
    for r in rules {
        x.open("CORSRule");
        if let Some(id) = &r.id {
            x.elem("ID", id);
        }
        for h in &r.headers {
            x.elem("AllowedHeader", h);
        }
        for m in &r.methods {
            x.elem("AllowedMethod", m);
        }
        for o in &r.origins {
            x.elem("AllowedOrigin", o);
        }
        for h in &r.expose {
            x.elem("ExposeHeader", h);
        }
        if let Some(a) = r.max_age {
            x.elem("MaxAgeSeconds", &a.to_string());
        }
        x.close("CORSRule");
    }
    x.finish("CORSConfiguration")
}

pub async fn put_bucket_cors(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let body = read_small_body(req, conn, CORS_BODY_BYTES_MAX).await?;
    super::checksum::require_integrity(&req.head, &body)?;
    let doc = to_xml(&parse(&body)?).into_bytes();
    req.ctx.engine.set_bucket_config(req.bucket(), &state, CONFIG, Some(doc)).await?;
    Ok(Response::new(200))
}

pub async fn get_bucket_cors(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    match state.config(CONFIG) {
        Some(doc) => Ok(Response::xml(200, String::from_utf8_lossy(doc).into_owned())),
        None => Err(S3ErrorCode::NoSuchCORSConfiguration.into()),
    }
}

pub async fn delete_bucket_cors(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, CONFIG, None).await?;
    Ok(Response::new(204))
}

/// The rules of the request's bucket, when it has any.
fn rules_of(req: &Req<'_>) -> Option<Vec<Rule>> {
    let state = req.ctx.engine.bucket(req.bucket.as_deref()?)?;
    // Stored documents were validated when put; one that no longer parses
    // (a future format) grants nothing.
    parse(state.config(CONFIG)?).ok()
}

const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// The headers every CORS answer carries for `rule`.
fn allow(resp: &mut Response, rule: &Rule, origin: &str) {
    match rule.allow_origin(origin) {
        Some(o) => {
            resp.set_header("access-control-allow-origin", o);
            resp.set_header("access-control-allow-credentials", "true");
        }
        None => resp.set_header("access-control-allow-origin", "*"),
    }
    resp.set_header("access-control-allow-methods", rule.methods.join(", "));
    if !rule.expose.is_empty() {
        resp.set_header("access-control-expose-headers", rule.expose.join(", "));
    }
}

/// The preflight: unauthenticated, answered from the bucket's rules.
pub fn preflight(req: &Req<'_>) -> Result<Response, S3Error> {
    let h = &req.head;
    let Some(origin) = h.header("origin") else {
        return Err(S3Error::with_message(
            S3ErrorCode::BadRequest,
            "Insufficient information. Origin request header needed.",
        ));
    };
    let Some(method) = h.header("access-control-request-method") else {
        return Err(S3Error::with_message(
            S3ErrorCode::BadRequest,
            "Insufficient information. Access-Control-Request-Method request header needed.",
        ));
    };
    let Some(bucket) = req.bucket.as_deref() else {
        return Err(S3ErrorCode::AccessForbidden.into());
    };
    if req.ctx.engine.bucket(bucket).is_none() {
        return Err(S3ErrorCode::NoSuchBucket.into());
    }
    let Some(rules) = rules_of(req) else {
        return Err(S3ErrorCode::AccessForbidden.into());
    };
    let asked: Vec<String> = h
        .header("access-control-request-headers")
        .map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let Some(rule) = rules
        .iter()
        .find(|r| r.allows_origin(origin) && r.allows_method(method) && asked.iter().all(|a| r.allows_header(a)))
    else {
        return Err(S3Error::with_message(S3ErrorCode::AccessForbidden, NOT_ALLOWED));
    };
    let mut resp = Response::new(200);
    allow(&mut resp, rule, origin);
    if !asked.is_empty() {
        resp.set_header("access-control-allow-headers", asked.join(", "));
    }
    if let Some(age) = rule.max_age {
        resp.set_header("access-control-max-age", age.to_string());
    }
    resp.set_header("vary", VARY);
    Ok(resp)
}

/// Adds the CORS headers to the answer of an actual (non-preflight)
/// request that carries `Origin`, when a rule of its bucket matches.
pub fn decorate(req: &Req<'_>, resp: &mut Response) {
    let Some(origin) = req.head.header("origin") else {
        return;
    };
    let Some(rules) = rules_of(req) else {
        return;
    };
    resp.set_header("vary", VARY);
    let method = method_of(&req.head);
    if let Some(rule) = rules.iter().find(|r| r.allows_origin(origin) && r.allows_method(method)) {
        allow(resp, rule, origin);
    }
}

/// The method a rule is matched against: the request's own, or the one it
/// names in Access-Control-Request-Method.
fn method_of(h: &Head) -> &str {
    h.header("access-control-request-method").unwrap_or(&h.method)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rules: &str) -> Vec<u8> {
        format!("<CORSConfiguration>{rules}</CORSConfiguration>").into_bytes()
    }

    fn code(body: &[u8]) -> String {
        parse(body).unwrap_err().code.as_str().to_string()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*.suffix", "a.suffix"));
        assert!(!wildcard_match("*.suffix", "a.suffix.get"));
        assert!(wildcard_match("start*end", "startend"));
        assert!(!wildcard_match("start*end", "0startend"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("prefix*", "prefix"));
        assert!(wildcard_match("http://a", "http://a"));
        assert!(!wildcard_match("http://a", "http://ab"));
    }

    #[test]
    fn round_trip_keeps_rules_in_order() {
        let body = doc(
            "<CORSRule><ID>one</ID><AllowedOrigin>http://a</AllowedOrigin><AllowedMethod>GET</AllowedMethod>\
             <AllowedHeader>X-Amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>30</MaxAgeSeconds></CORSRule>\
             <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>HEAD</AllowedMethod></CORSRule>",
        );
        let rules = parse(&body).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].headers, ["x-amz-*"]);
        assert_eq!(rules[1].methods, ["PUT", "HEAD"]);
        assert_eq!(parse(to_xml(&rules).as_bytes()).unwrap(), rules);
    }

    #[test]
    fn refused_as_aws_refuses() {
        let rule = |inner: &str| doc(&format!("<CORSRule>{inner}</CORSRule>"));
        let get = "<AllowedMethod>GET</AllowedMethod>";
        let any = "<AllowedOrigin>*</AllowedOrigin>";
        assert_eq!(code(b"<CORSConfiguration/>"), "MalformedXML");
        assert_eq!(code(&rule(get)), "MalformedXML");
        assert_eq!(code(&rule(any)), "MalformedXML");
        assert_eq!(code(&rule(&format!("{any}<AllowedMethod>PATCH</AllowedMethod>"))), "InvalidRequest");
        assert_eq!(code(&rule(&format!("{get}<AllowedOrigin>*a*</AllowedOrigin>"))), "InvalidRequest");
        assert_eq!(code(&rule(&format!("{get}{any}<AllowedHeader>*-*</AllowedHeader>"))), "InvalidRequest");
        assert_eq!(code(&rule(&format!("{get}{any}<ExposeHeader>*</ExposeHeader>"))), "InvalidRequest");
        assert_eq!(code(&rule(&format!("{get}{any}<MaxAgeSeconds>-1</MaxAgeSeconds>"))), "MalformedXML");
        assert_eq!(code(&rule(&format!("{get}{any}<Bogus>1</Bogus>"))), "MalformedXML");
        assert_eq!(code(&rule(&format!("{get}{any}<ID>{}</ID>", "i".repeat(256)))), "InvalidArgument");
        let many = format!("<CORSRule>{get}{any}</CORSRule>").repeat(RULES_MAX + 1);
        assert_eq!(code(&doc(&many)), "InvalidRequest");
        let most = format!("<CORSRule>{get}{any}</CORSRule>").repeat(RULES_MAX);
        assert_eq!(parse(&doc(&most)).unwrap().len(), RULES_MAX);
    }
}
