//! Bucket policies: the JSON grammar real policies use (IAM "Policy
//! elements reference", "IAM JSON policy elements: Condition operators"),
//! validated on PutBucketPolicy and evaluated by `access::decide`.

use std::net::IpAddr;

use serde_json::Value;

use super::access::Question;
use super::error::{S3Error, S3ErrorCode};
use crate::http::head::Head;

/// Policy documents larger than AWS's 20 KB bucket policy limit are refused.
pub const POLICY_BYTES_MAX: usize = 20 << 10;

/// What the request carries that conditions can name.
pub struct RequestFacts<'a> {
    pub head: &'a Head,
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
    pub now_ms: i64,
    /// `AWS4-HMAC-SHA256` or `AWS` (SigV2); None when anonymous.
    pub signature_version: Option<&'static str>,
    /// `REST-HEADER`, `REST-QUERY-STRING` or `POST`.
    pub auth_type: Option<&'static str>,
    /// The access key of the requester, for `aws:username`-style keys.
    pub user: Option<&'a str>,
    /// The requester's canonical id.
    pub user_id: Option<&'a str>,
    /// `s3:prefix` when it is not the request's `prefix` parameter: the key
    /// of a read whose object is missing (S3 then asks whether the
    /// requester may list that key).
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// No statement applies.
    Silent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    allow: bool,
    /// Principal values (or NotPrincipal's when `not_principal`).
    principals: Vec<String>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    op: Operator,
    negate: bool,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    Null,
}

fn malformed(why: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedPolicy, why)
}

/// A string or a list of strings (policy values take either form).
fn strings(v: &Value, field: &str) -> Result<Vec<String>, S3Error> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(malformed(&format!("{field} values must be strings"))),
    };
    match v {
        Value::Array(a) if a.is_empty() => Err(malformed(&format!("{field} must not be empty"))),
        Value::Array(a) => a.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn operator(name: &str) -> Option<(Operator, bool, bool)> {
    let name = name.strip_prefix("ForAnyValue:").or_else(|| name.strip_prefix("ForAllValues:")).unwrap_or(name);
    let (name, if_exists) = match name.strip_suffix("IfExists") {
        Some(n) => (n, true),
        None => (name, false),
    };
    use Operator::*;
    let (op, negate) = match name {
        "StringEquals" => (StringEquals, false),
        "StringNotEquals" => (StringEquals, true),
        "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (NumericEquals, false),
        "NumericNotEquals" => (NumericEquals, true),
        "NumericLessThan" => (NumericLessThan, false),
        "NumericLessThanEquals" => (NumericLessThanEquals, false),
        "NumericGreaterThan" => (NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (NumericGreaterThanEquals, false),
        "DateEquals" => (DateEquals, false),
        "DateNotEquals" => (DateEquals, true),
        "DateLessThan" => (DateLessThan, false),
        "DateLessThanEquals" => (DateLessThanEquals, false),
        "DateGreaterThan" => (DateGreaterThan, false),
        "DateGreaterThanEquals" => (DateGreaterThanEquals, false),
        "Bool" => (Bool, false),
        "IpAddress" => (IpAddress, false),
        "NotIpAddress" => (IpAddress, true),
        "Null" => (Null, false),
        _ => return None,
    };
    Some((op, negate, if_exists))
}

impl Policy {
    /// Parses and validates a policy for `bucket` (None: parse a stored one
    /// without the resource check).
    pub fn parse_for(doc: &[u8], bucket: Option<&str>) -> Result<Policy, S3Error> {
        if doc.len() > POLICY_BYTES_MAX {
            return Err(malformed("Policies must not exceed 20 KB"));
        }
        let root: Value = serde_json::from_slice(doc).map_err(|_| malformed("This policy contains invalid Json"))?;
        let Value::Object(root) = root else {
            return Err(malformed("This policy contains invalid Json"));
        };
        for k in root.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed("Policy has invalid field"));
            }
        }
        match root.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => return Err(malformed("The policy must contain a valid version string")),
        }
        let list = match root.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => return Err(malformed("Missing required field Statement")),
        };
        let statements = list.iter().map(|s| Statement::parse(s, bucket)).collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    pub fn parse(doc: &[u8]) -> Result<Policy, S3Error> {
        Policy::parse_for(doc, None)
    }

    /// Explicit Deny wins over Allow; nothing applying is Silent.
    pub fn evaluate(&self, q: &Question<'_>, facts: &RequestFacts<'_>) -> Verdict {
        let mut verdict = Verdict::Silent;
        for s in &self.statements {
            if s.applies(q, facts) {
                if !s.allow {
                    return Verdict::Deny;
                }
                verdict = Verdict::Allow;
            }
        }
        verdict
    }
}

impl Statement {
    fn parse(v: &Value, bucket: Option<&str>) -> Result<Statement, S3Error> {
        let Value::Object(m) = v else {
            return Err(malformed("Statement must be an object"));
        };
        for k in m.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(malformed(&format!("Unknown field {k}")));
            }
        }
        let allow = match m.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err(malformed("Invalid effect")),
        };
        let (principal, not_principal) = match (m.get("Principal"), m.get("NotPrincipal")) {
            (Some(p), None) => (p, false),
            // IAM: "we do not support using NotPrincipal with Allow".
            (None, Some(_)) if allow => return Err(malformed("NotPrincipal is not supported with Effect Allow")),
            (None, Some(p)) => (p, true),
            _ => return Err(malformed("Missing required field Principal")),
        };
        let principals = match principal {
            Value::String(s) if s == "*" => vec!["*".to_owned()],
            Value::Object(o) if !o.is_empty() => {
                let mut all = Vec::new();
                for (kind, values) in o {
                    if !matches!(kind.as_str(), "AWS" | "CanonicalUser") {
                        return Err(malformed("Invalid principal in policy"));
                    }
                    all.extend(strings(values, "Principal")?);
                }
                all
            }
            _ => return Err(malformed("Invalid principal in policy")),
        };
        let (actions, not_action) = match (m.get("Action"), m.get("NotAction")) {
            (Some(a), None) => (strings(a, "Action")?, false),
            (None, Some(a)) => (strings(a, "NotAction")?, true),
            _ => return Err(malformed("Missing required field Action")),
        };
        for a in &actions {
            if a != "*" && !a.to_ascii_lowercase().starts_with("s3:") {
                return Err(malformed("Policy has invalid action"));
            }
        }
        let (resources, not_resource) = match (m.get("Resource"), m.get("NotResource")) {
            (Some(r), None) => (strings(r, "Resource")?, false),
            (None, Some(r)) => (strings(r, "NotResource")?, true),
            _ => return Err(malformed("Missing required field Resource")),
        };
        if let Some(bucket) = bucket {
            for r in &resources {
                let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
                    return Err(malformed("Policy has invalid resource"));
                };
                let name = rest.split('/').next().unwrap_or("");
                if !wildcard(name, bucket) {
                    return Err(malformed("Policy has invalid resource"));
                }
            }
        }
        let mut conditions = Vec::new();
        match m.get("Condition") {
            None => {}
            Some(Value::Object(ops)) => {
                for (name, body) in ops {
                    let (op, negate, if_exists) =
                        operator(name).ok_or_else(|| malformed(&format!("Invalid Condition type : {name}")))?;
                    let Value::Object(keys) = body else {
                        return Err(malformed("Invalid Condition block"));
                    };
                    for (key, values) in keys {
                        let values = strings(values, "Condition")?;
                        if op == Operator::IpAddress && values.iter().any(|v| parse_cidr(v).is_none()) {
                            return Err(malformed("Invalid IP address in Condition"));
                        }
                        conditions.push(Condition { op, negate, if_exists, key: key.to_ascii_lowercase(), values });
                    }
                }
            }
            Some(_) => return Err(malformed("Invalid Condition block")),
        }
        Ok(Statement { allow, principals, not_principal, actions, not_action, resources, not_resource, conditions })
    }

    fn applies(&self, q: &Question<'_>, facts: &RequestFacts<'_>) -> bool {
        let principal = self.principals.iter().any(|p| principal_matches(p, facts));
        if principal == self.not_principal {
            return false;
        }
        let action = self.actions.iter().any(|a| wildcard(&a.to_ascii_lowercase(), &q.action.to_ascii_lowercase()));
        if action == self.not_action {
            return false;
        }
        let arn = match q.key {
            Some(k) => format!("arn:aws:s3:::{}/{k}", q.bucket_name),
            None => format!("arn:aws:s3:::{}", q.bucket_name),
        };
        let resource = self.resources.iter().any(|r| wildcard(r, &arn));
        if resource == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(q, facts))
    }
}

fn principal_matches(p: &str, facts: &RequestFacts<'_>) -> bool {
    if p == "*" {
        return true;
    }
    let (Some(user), Some(id)) = (facts.user, facts.user_id) else {
        return false;
    };
    p == user
        || p == id
        || p.strip_prefix("arn:aws:iam::").is_some_and(|rest| {
            rest.split_once(':').is_some_and(|(account, what)| {
                (account == id || account == user) && what == "root" || what == format!("user/{user}")
            })
        })
}

impl Condition {
    fn holds(&self, q: &Question<'_>, facts: &RequestFacts<'_>) -> bool {
        let value = context_value(&self.key, q, facts);
        if self.op == Operator::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return value.is_none() == want_absent;
        }
        let Some(value) = value else {
            // An absent key matches nothing: positive operators fail,
            // negated ones hold, ...IfExists always holds.
            return self.if_exists || self.negate;
        };
        let matched = self.values.iter().any(|want| self.op.matches(want, &value));
        matched != self.negate
    }
}

impl Operator {
    fn matches(self, want: &str, have: &str) -> bool {
        use Operator::*;
        let num = |s: &str| s.trim().parse::<f64>().ok();
        let date = |s: &str| date_ms(s);
        match self {
            StringEquals => want == have,
            StringEqualsIgnoreCase => want.eq_ignore_ascii_case(have),
            StringLike => wildcard(want, have),
            NumericEquals | NumericLessThan | NumericLessThanEquals | NumericGreaterThan | NumericGreaterThanEquals => {
                let (Some(w), Some(h)) = (num(want), num(have)) else { return false };
                match self {
                    NumericEquals => h == w,
                    NumericLessThan => h < w,
                    NumericLessThanEquals => h <= w,
                    NumericGreaterThan => h > w,
                    _ => h >= w,
                }
            }
            DateEquals | DateLessThan | DateLessThanEquals | DateGreaterThan | DateGreaterThanEquals => {
                let (Some(w), Some(h)) = (date(want), date(have)) else { return false };
                match self {
                    DateEquals => h == w,
                    DateLessThan => h < w,
                    DateLessThanEquals => h <= w,
                    DateGreaterThan => h > w,
                    _ => h >= w,
                }
            }
            Bool => want.eq_ignore_ascii_case(have),
            IpAddress => {
                let (Some((net, bits)), Ok(ip)) = (parse_cidr(want), have.parse::<IpAddr>()) else { return false };
                in_cidr(ip, net, bits)
            }
            Null => false,
        }
    }
}

/// ISO 8601 dates or epoch seconds, as condition values may be written.
fn date_ms(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs * 1000);
    }
    super::post::parse_iso8601(s)
}

/// The request-context value a condition key names (keys lowercased).
fn context_value(key: &str, q: &Question<'_>, facts: &RequestFacts<'_>) -> Option<String> {
    let head = facts.head;
    let query = |name: &str| head.query_param(name);
    match key {
        "aws:sourceip" => facts.source_ip.map(|ip| ip.to_string()),
        "aws:securetransport" => Some(facts.secure.to_string()),
        "aws:currenttime" => Some(crate::s3::xml::iso8601(facts.now_ms)),
        "aws:epochtime" => Some((facts.now_ms / 1000).to_string()),
        "aws:useragent" => head.header("user-agent").map(str::to_owned),
        "aws:referer" => head.header("referer").map(str::to_owned),
        "aws:username" | "aws:userid" => facts.user.map(str::to_owned),
        "aws:principaltype" => Some(if facts.user.is_some() { "User" } else { "Anonymous" }.to_owned()),
        "s3:prefix" => facts.prefix.clone().or_else(|| query("prefix")),
        "s3:delimiter" => query("delimiter"),
        "s3:max-keys" => query("max-keys"),
        "s3:versionid" => query("versionId"),
        "s3:signatureversion" => facts.signature_version.map(|v| v.to_owned()),
        "s3:authtype" => facts.auth_type.map(str::to_owned),
        _ => {
            if let Some(tag) = key.strip_prefix("s3:requestobjecttag/") {
                let tags = super::tagging::parse_header(head.header("x-amz-tagging")?).ok()?;
                return tags.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(tag)).map(|(_, v)| v);
            }
            if let Some(tag) = key.strip_prefix("s3:existingobjecttag/") {
                let object = q.object.as_ref()?;
                return object.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(tag)).map(|(_, v)| v.clone());
            }
            if let Some(header) = key.strip_prefix("s3:")
                && header.starts_with("x-amz-")
            {
                return head.header(header).map(str::to_owned);
            }
            None
        }
    }
}

/// Parsed stored policies, per core, by document: a bucket with a policy
/// parses it once, not on every request. Bounded; emptied when full.
const PARSED_CACHE_MAX: usize = 256;

thread_local! {
    static PARSED: std::cell::RefCell<std::collections::HashMap<Box<[u8]>, std::rc::Rc<Policy>>> =
        Default::default();
}

/// A stored (already validated) policy document, parsed; None if it no
/// longer parses (it then grants nothing).
pub fn parsed(doc: &[u8]) -> Option<std::rc::Rc<Policy>> {
    PARSED.with(|cache| {
        if let Some(p) = cache.borrow().get(doc) {
            return Some(p.clone());
        }
        let p = std::rc::Rc::new(Policy::parse(doc).ok()?);
        let mut cache = cache.borrow_mut();
        if cache.len() >= PARSED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(doc.into(), p.clone());
        Some(p)
    })
}

/// IAM's wildcard matching: `*` any run, `?` one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    // Both as IPv6 (IPv4 mapped), so a v4 range also matches ::ffff:a.b.c.d.
    let wide = |a: IpAddr| match a.to_canonical() {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().to_bits(), 96u32),
        IpAddr::V6(v6) => (v6.to_bits(), 0),
    };
    let ((ip, _), (net, off)) = (wide(ip), wide(net));
    let bits = u32::from(bits) + off;
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    ip & mask == net & mask
}

/// Whether a policy grants access to the public: an Allow for every
/// principal not narrowed by a source-address or account condition (the
/// test GetBucketPolicyStatus and BlockPublicPolicy use).
pub fn is_public(p: &Policy) -> bool {
    p.statements.iter().any(|s| {
        s.allow
            && !s.not_principal
            && s.principals.iter().any(|p| p == "*")
            && !s.conditions.iter().any(|c| {
                !c.negate
                    && matches!(
                        c.key.as_str(),
                        "aws:sourceip"
                            | "aws:sourcevpc"
                            | "aws:sourcevpce"
                            | "aws:sourceaccount"
                            | "aws:principalaccount"
                            | "aws:userid"
                            | "aws:username"
                    )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y"));
        assert!(wildcard("s3:get*", "s3:getobject"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("arn:aws:s3:::b/*", "arn:aws:s3:::b"));
        assert!(wildcard("*", ""));
    }

    #[test]
    fn cidrs() {
        let (net, bits) = parse_cidr("127.0.0.0/8").unwrap();
        assert!(in_cidr("127.0.0.1".parse().unwrap(), net, bits));
        assert!(!in_cidr("10.0.0.1".parse().unwrap(), net, bits));
        assert!(in_cidr("::ffff:127.0.0.1".parse().unwrap(), net, bits));
        let (net, bits) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(in_cidr("8.8.8.8".parse().unwrap(), net, bits));
        assert!(parse_cidr("300.1.1.1/8").is_none());
        assert!(parse_cidr("1.1.1.1/33").is_none());
    }

    #[test]
    fn bad_policies_are_malformed() {
        let ok = br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(Policy::parse_for(ok, Some("b")).is_ok());
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"Statement":[]}"#,
            br#"{"Version":"2001-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
            br#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
            br#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
            br#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ec2:*","Resource":"arn:aws:s3:::b"}}"#,
            br#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other/*"}}"#,
            br#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"StringSorta":{"s3:prefix":"x"}}}}"#,
            br#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"IpAddress":{"aws:SourceIp":"nope"}}}}"#,
        ] {
            let e = Policy::parse_for(bad, Some("b")).unwrap_err();
            assert_eq!(e.code, S3ErrorCode::MalformedPolicy, "{}", String::from_utf8_lossy(bad));
        }
    }
}
