//! Lifecycle configuration documents: parsing with AWS's validation,
//! writing back in the form the client used, and what a rule does to an
//! object (AWS user guide "Lifecycle configuration elements", "Setting
//! lifecycle configuration", "How Amazon S3 calculates when an object
//! expires").

use super::super::error::{S3Error, S3ErrorCode};
use super::super::xml::{Node, Xml};
use crate::s3::tagging::Tags;

pub const RULES_MAX: usize = 1000;
const RULE_ID_CHARS_MAX: usize = 255;
const NEWER_NONCURRENT_VERSIONS_MAX: u32 = 100;
pub const DAY_MS: i64 = 86_400_000;

/// Storage classes S3 knows; a transition may only name one the node has
/// declared as a tier.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

/// Which objects a rule applies to. Every condition present must hold.
/// AWS allows one of Prefix, Tag, ObjectSize… or And directly in a Filter;
/// several side by side are accepted here and all must hold (s3-tests and
/// Ceph rely on it), which is what an And of them would mean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub prefix: Option<String>,
    pub tag: Option<(String, String)>,
    pub size_gt: Option<u64>,
    pub size_lt: Option<u64>,
    pub and: Option<Box<Filter>>,
    /// The And's tags (only inside `and`).
    pub tags: Tags,
}

impl Filter {
    fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        let has = |t: &(String, String)| tags.iter().any(|x| x == t);
        self.prefix.as_ref().is_none_or(|p| key.starts_with(p.as_str()))
            && self.tag.as_ref().is_none_or(has)
            && self.tags.iter().all(has)
            && self.size_gt.is_none_or(|n| size > n)
            && self.size_lt.is_none_or(|n| size < n)
            && self.and.as_ref().is_none_or(|a| a.matches(key, size, tags))
    }

    fn has_tags(&self) -> bool {
        self.tag.is_some() || !self.tags.is_empty() || self.and.as_ref().is_some_and(|a| a.has_tags())
    }

    fn has_size(&self) -> bool {
        self.size_gt.is_some() || self.size_lt.is_some() || self.and.as_ref().is_some_and(|a| a.has_size())
    }
}

/// When something happens: after a number of days, or on a date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum When {
    Days(u32),
    /// Midnight UTC, in ms, with the text the client sent.
    Date(i64, String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expiration {
    pub when: Option<When>,
    pub expired_object_delete_marker: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoncurrentExpiration {
    pub days: u32,
    pub newer_versions: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub when: Option<When>,
    /// Noncurrent transitions: how many newer noncurrent versions to keep.
    pub newer_versions: Option<u32>,
    pub storage_class: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The deprecated rule-level `<Prefix>` (PutBucketLifecycle).
    Prefix(String),
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub scope: Scope,
    pub expiration: Option<Expiration>,
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    pub abort_days: Option<u32>,
    pub transitions: Vec<Transition>,
    pub noncurrent_transitions: Vec<Transition>,
}

impl Rule {
    /// Whether the rule applies to a version with this key, size and tags.
    pub fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        self.enabled
            && match &self.scope {
                Scope::Prefix(p) => key.starts_with(p.as_str()),
                Scope::Filter(f) => f.matches(key, size, tags),
            }
    }

    /// Whether the rule applies to multipart uploads of this key (size and
    /// tag filters are refused with AbortIncompleteMultipartUpload).
    pub fn matches_upload(&self, key: &str) -> bool {
        self.abort_days.is_some() && self.matches(key, 0, &[])
    }

    fn filter(&self) -> Option<&Filter> {
        match &self.scope {
            Scope::Filter(f) => Some(f),
            Scope::Prefix(_) => None,
        }
    }
}

/// How long a lifecycle day lasts and whether due times round up to the
/// next day boundary (AWS rounds to the next midnight UTC; a scaled test
/// day, `--lifecycle-day-secs`, does not round, as Ceph's debug interval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub day_ms: i64,
    pub round: bool,
}

impl Clock {
    pub fn new(day_secs: Option<u64>) -> Self {
        match day_secs {
            Some(s) => Clock { day_ms: (s as i64 * 1000).max(1), round: false },
            None => Clock { day_ms: DAY_MS, round: true },
        }
    }

    /// When something `days` days after `from_ms` is due.
    pub fn due(&self, from_ms: i64, when: &When) -> i64 {
        match when {
            When::Date(ms, _) => *ms,
            When::Days(d) => {
                let t = from_ms + *d as i64 * self.day_ms;
                if self.round {
                    t.div_euclid(self.day_ms) * self.day_ms + if t % self.day_ms == 0 { 0 } else { self.day_ms }
                } else {
                    t
                }
            }
        }
    }
}

/// The rules of a bucket, in the order the client gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// When the current version of a key expires under these rules, and by
    /// which rule (the earliest; the `x-amz-expiration` header).
    pub fn expiry(
        &self,
        clock: Clock,
        key: &str,
        size: u64,
        tags: &[(String, String)],
        mtime_ms: i64,
    ) -> Option<(i64, &str)> {
        self.0
            .iter()
            .filter(|r| r.matches(key, size, tags))
            .filter_map(|r| Some((clock.due(mtime_ms, r.expiration.as_ref()?.when.as_ref()?), r.id.as_str())))
            .min_by_key(|(t, _)| *t)
    }

    /// When an upload of `key` started at `initiated_ms` is aborted, and by
    /// which rule (`x-amz-abort-date` / `x-amz-abort-rule-id`).
    pub fn abort(&self, clock: Clock, key: &str, initiated_ms: i64) -> Option<(i64, &str)> {
        self.0
            .iter()
            .filter(|r| r.matches_upload(key))
            .filter_map(|r| Some((clock.due(initiated_ms, &When::Days(r.abort_days?)), r.id.as_str())))
            .min_by_key(|(t, _)| *t)
    }
}

fn malformed() -> S3Error {
    S3ErrorCode::MalformedXML.into()
}

fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg)
}

fn invalid_request(msg: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg)
}

fn number<T: std::str::FromStr>(n: &Node) -> Result<T, S3Error> {
    n.text.trim().parse().map_err(|_| malformed())
}

/// A positive number of days (AWS: InvalidArgument otherwise).
fn days(n: &Node, what: &str) -> Result<u32, S3Error> {
    let d: i64 = number(n)?;
    match u32::try_from(d) {
        Ok(d) if d > 0 => Ok(d),
        _ => Err(invalid(format!("'{what}' for {} action must be a positive integer", n.name))),
    }
}

/// A Date element: ISO 8601 at midnight UTC.
fn date(n: &Node) -> Result<When, S3Error> {
    let text = n.text.trim();
    let ms = super::super::post::parse_iso8601(text).ok_or_else(|| invalid("Invalid date"))?;
    if ms % DAY_MS != 0 {
        return Err(invalid("'Date' must be at midnight GMT"));
    }
    Ok(When::Date(ms, text.to_string()))
}

fn parse_filter(n: &Node, inside_and: bool) -> Result<Filter, S3Error> {
    let mut f = Filter::default();
    for c in &n.children {
        match c.name.as_str() {
            "Prefix" if f.prefix.is_none() => f.prefix = Some(c.text.clone()),
            "Tag" if inside_and => f.tags.extend(crate::s3::tagging::parse_tag_list(std::iter::once(c))?),
            "Tag" if f.tag.is_none() => {
                f.tag = crate::s3::tagging::parse_tag_list(std::iter::once(c))?.pop();
            }
            "ObjectSizeGreaterThan" if f.size_gt.is_none() => f.size_gt = Some(number(c)?),
            "ObjectSizeLessThan" if f.size_lt.is_none() => f.size_lt = Some(number(c)?),
            "And" if !inside_and && f.and.is_none() => f.and = Some(Box::new(parse_filter(c, true)?)),
            _ => return Err(malformed()),
        }
    }
    if let (Some(gt), Some(lt)) = (f.size_gt, f.size_lt)
        && gt >= lt
    {
        return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    if f.size_lt == Some(0) {
        return Err(invalid("ObjectSizeLessThan must be greater than 0"));
    }
    let mut keys: Vec<&String> = f.tags.iter().map(|(k, _)| k).collect();
    keys.sort();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("Duplicate Tag Keys are not allowed."));
    }
    Ok(f)
}

fn parse_when(n: &Node, days_name: &str, allow_zero: bool) -> Result<Option<When>, S3Error> {
    match (n.child(days_name), n.child("Date")) {
        (Some(_), Some(_)) => Err(malformed()),
        (Some(d), None) if allow_zero => {
            let v: i64 = number(d)?;
            u32::try_from(v)
                .map(|v| Some(When::Days(v)))
                .map_err(|_| invalid("'Days' in Transition action must be nonnegative"))
        }
        (Some(d), None) => Ok(Some(When::Days(days(d, days_name)?))),
        (None, Some(d)) => Ok(Some(date(d)?)),
        (None, None) => Ok(None),
    }
}

fn parse_transition(n: &Node, days_name: &str, tiers: &[String]) -> Result<Transition, S3Error> {
    let class = n.text_of("StorageClass").ok_or_else(malformed)?.to_string();
    if !STORAGE_CLASSES.contains(&class.as_str()) {
        return Err(malformed());
    }
    if !tiers.contains(&class) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidStorageClass,
            format!("The storage class {class} is not declared on this node (kaligon serve --tier {class}=DIR)"),
        ));
    }
    let when = parse_when(n, days_name, true)?;
    if days_name == "NoncurrentDays" && !matches!(when, Some(When::Days(_))) {
        return Err(malformed());
    }
    let newer_versions = n.child("NewerNoncurrentVersions").map(newer).transpose()?;
    Ok(Transition { when: Some(when.ok_or_else(malformed)?), newer_versions, storage_class: class })
}

fn newer(n: &Node) -> Result<u32, S3Error> {
    let v: i64 = number(n)?;
    match u32::try_from(v) {
        Ok(v) if (1..=NEWER_NONCURRENT_VERSIONS_MAX).contains(&v) => Ok(v),
        _ => Err(invalid(format!("NewerNoncurrentVersions must be between 1 and {NEWER_NONCURRENT_VERSIONS_MAX}"))),
    }
}

fn parse_rule(n: &Node, tiers: &[String]) -> Result<Rule, S3Error> {
    const KNOWN: &[&str] = &[
        "ID",
        "Status",
        "Prefix",
        "Filter",
        "Expiration",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
        "Transition",
        "NoncurrentVersionTransition",
    ];
    if n.children.iter().any(|c| !KNOWN.contains(&c.name.as_str())) {
        return Err(malformed());
    }
    let id = match n.text_of("ID") {
        Some(id) if id.chars().count() > RULE_ID_CHARS_MAX => {
            return Err(invalid("ID length should not exceed allowed limit of 255"));
        }
        Some(id) if !id.is_empty() => id.to_string(),
        // AWS makes up an id for a rule that has none.
        _ => generated_id(),
    };
    let enabled = match n.child("Status").map(|s| s.text.as_str()) {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(malformed()),
    };
    let scope = match (n.child("Prefix"), n.child("Filter")) {
        (Some(_), Some(_)) | (None, None) => return Err(malformed()),
        (Some(p), None) => Scope::Prefix(p.text.clone()),
        (None, Some(f)) => Scope::Filter(parse_filter(f, false)?),
    };
    let expiration = match n.child("Expiration") {
        None => None,
        Some(e) => {
            let when = parse_when(e, "Days", false)?;
            let eodm = match e.text_of("ExpiredObjectDeleteMarker") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(malformed()),
            };
            if when.is_some() == eodm.is_some() {
                // Neither, or a delete-marker flag beside Days/Date.
                return Err(malformed());
            }
            Some(Expiration { when, expired_object_delete_marker: eodm })
        }
    };
    let noncurrent_expiration = match n.child("NoncurrentVersionExpiration") {
        None => None,
        Some(e) => Some(NoncurrentExpiration {
            days: days(e.child("NoncurrentDays").ok_or_else(malformed)?, "NoncurrentDays")?,
            newer_versions: e.child("NewerNoncurrentVersions").map(newer).transpose()?,
        }),
    };
    let abort_days = match n.child("AbortIncompleteMultipartUpload") {
        None => None,
        Some(a) => Some(days(a.child("DaysAfterInitiation").ok_or_else(malformed)?, "DaysAfterInitiation")?),
    };
    let transitions = n.all("Transition").map(|t| parse_transition(t, "Days", tiers)).collect::<Result<Vec<_>, _>>()?;
    let noncurrent_transitions = n
        .all("NoncurrentVersionTransition")
        .map(|t| parse_transition(t, "NoncurrentDays", tiers))
        .collect::<Result<Vec<_>, _>>()?;
    let rule =
        Rule { id, enabled, scope, expiration, noncurrent_expiration, abort_days, transitions, noncurrent_transitions };
    check_rule(&rule)?;
    Ok(rule)
}

/// The checks across a rule's elements.
fn check_rule(r: &Rule) -> Result<(), S3Error> {
    let actions = r.expiration.is_some()
        || r.noncurrent_expiration.is_some()
        || r.abort_days.is_some()
        || !r.transitions.is_empty()
        || !r.noncurrent_transitions.is_empty();
    if !actions {
        return Err(invalid("At least one action needs to be specified in a rule"));
    }
    let filter = r.filter();
    if r.abort_days.is_some() && filter.is_some_and(|f| f.has_tags() || f.has_size()) {
        return Err(invalid_request(
            "AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters.",
        ));
    }
    if r.expiration.as_ref().is_some_and(|e| e.expired_object_delete_marker.is_some())
        && filter.is_some_and(|f| f.has_tags())
    {
        return Err(invalid_request("ExpiredObjectDeleteMarker cannot be specified with Tags."));
    }
    // Transitions come before expiration, in increasing order of days.
    let days_of = |w: &Option<When>| match w {
        Some(When::Days(d)) => Some(*d),
        _ => None,
    };
    let mut last = None;
    for t in &r.transitions {
        if let (Some(d), Some(prev)) = (days_of(&t.when), last)
            && d <= prev
        {
            return Err(invalid("'Days' in the Transition actions must be in increasing order"));
        }
        last = days_of(&t.when).or(last);
    }
    if let (Some(exp), Some(t)) = (r.expiration.as_ref().and_then(|e| days_of(&e.when)), last)
        && exp <= t
    {
        return Err(invalid("'Days' in the Expiration action must be greater than 'Days' in the Transition action"));
    }
    let mut classes: Vec<&str> = r.transitions.iter().map(|t| t.storage_class.as_str()).collect();
    classes.sort();
    if classes.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("'StorageClass' must be different for 'Transition' actions in same 'Rule'"));
    }
    Ok(())
}

fn generated_id() -> String {
    let mut b = [0u8; 12];
    let _ = getrandom::fill(&mut b);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Parses and validates a LifecycleConfiguration document. `tiers` are the
/// storage classes this node can move objects to.
pub fn parse(body: &[u8], tiers: &[String]) -> Result<Rules, S3Error> {
    let root = super::super::xml::parse(body)?;
    if root.name != "LifecycleConfiguration" || root.children.iter().any(|c| c.name != "Rule") {
        return Err(malformed());
    }
    if root.children.is_empty() || root.children.len() > RULES_MAX {
        return Err(malformed());
    }
    let rules = root.children.iter().map(|r| parse_rule(r, tiers)).collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
    }
    Ok(Rules(rules))
}

fn write_when(x: &mut Xml, when: &Option<When>, days_name: &str) {
    match when {
        Some(When::Days(d)) => {
            x.elem(days_name, &d.to_string());
        }
        Some(When::Date(_, text)) => {
            x.elem("Date", text);
        }
        None => {}
    }
}

fn write_filter(x: &mut Xml, f: &Filter) {
    if let Some(p) = &f.prefix {
        x.elem("Prefix", p);
    }
    for (k, v) in f.tag.iter().chain(&f.tags) {
        x.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
    }
    if let Some(n) = f.size_gt {
        x.elem("ObjectSizeGreaterThan", &n.to_string());
    }
    if let Some(n) = f.size_lt {
        x.elem("ObjectSizeLessThan", &n.to_string());
    }
    if let Some(a) = &f.and {
        x.open("And");
        write_filter(x, a);
        x.close("And");
    }
}

/// The document as GetBucketLifecycleConfiguration returns it: the rules in
/// order, each with exactly the elements it was given (plus a made-up ID).
pub fn to_xml(rules: &Rules) -> String {
    let mut x = Xml::new("LifecycleConfiguration");
    for r in &rules.0 {
        x.open("Rule").elem("ID", &r.id);
        match &r.scope {
            Scope::Prefix(p) => {
                x.elem("Prefix", p);
            }
            Scope::Filter(f) => {
                x.open("Filter");
                write_filter(&mut x, f);
                x.close("Filter");
            }
        }
        x.elem("Status", if r.enabled { "Enabled" } else { "Disabled" });
        for t in &r.transitions {
            x.open("Transition");
            write_when(&mut x, &t.when, "Days");
            x.elem("StorageClass", &t.storage_class).close("Transition");
        }
        if let Some(e) = &r.expiration {
            x.open("Expiration");
            write_when(&mut x, &e.when, "Days");
            if let Some(m) = e.expired_object_delete_marker {
                x.elem("ExpiredObjectDeleteMarker", if m { "true" } else { "false" });
            }
            x.close("Expiration");
        }
        for t in &r.noncurrent_transitions {
            x.open("NoncurrentVersionTransition");
            write_when(&mut x, &t.when, "NoncurrentDays");
            if let Some(n) = t.newer_versions {
                x.elem("NewerNoncurrentVersions", &n.to_string());
            }
            x.elem("StorageClass", &t.storage_class).close("NoncurrentVersionTransition");
        }
        if let Some(e) = &r.noncurrent_expiration {
            x.open("NoncurrentVersionExpiration").elem("NoncurrentDays", &e.days.to_string());
            if let Some(n) = e.newer_versions {
                x.elem("NewerNoncurrentVersions", &n.to_string());
            }
            x.close("NoncurrentVersionExpiration");
        }
        if let Some(d) = r.abort_days {
            x.open("AbortIncompleteMultipartUpload")
                .elem("DaysAfterInitiation", &d.to_string())
                .close("AbortIncompleteMultipartUpload");
        }
        x.close("Rule");
    }
    x.finish("LifecycleConfiguration")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rules: &str) -> Vec<u8> {
        format!(
            "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{rules}</LifecycleConfiguration>"
        )
        .into_bytes()
    }

    fn code(rules: &str) -> S3ErrorCode {
        parse(&doc(rules), &[]).unwrap_err().code
    }

    #[test]
    fn every_rule_kind_round_trips_in_order() {
        let rules = "<Rule><ID>a</ID><Prefix>logs/</Prefix><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule>\
            <Rule><ID>b</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Disabled</Status>\
            <Transition><Days>5</Days><StorageClass>GLACIER</StorageClass></Transition><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>\
            <NoncurrentVersionTransition><NoncurrentDays>3</NoncurrentDays><StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition>\
            <NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>\
            <Rule><ID>c</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>\
            <Rule><ID>d</ID><Filter><Prefix>u/</Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>";
        let parsed = parse(&doc(rules), &["GLACIER".into()]).unwrap();
        let again = parse(to_xml(&parsed).as_bytes(), &["GLACIER".into()]).unwrap();
        assert_eq!(parsed, again);
        assert_eq!(parsed.0.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert!(to_xml(&parsed).contains("<Rule><ID>a</ID><Prefix>logs/</Prefix>"));
    }

    #[test]
    fn invalid_documents_get_aws_errors() {
        let exp = |inner: &str| format!("<Rule><ID>r</ID><Prefix/><Status>Enabled</Status>{inner}</Rule>");
        assert_eq!(code(&exp("<Expiration><Days>0</Days></Expiration>")), S3ErrorCode::InvalidArgument);
        assert_eq!(
            code(&exp("<Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>")),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(&exp("<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>")),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            code(&exp(
                "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
            )),
            S3ErrorCode::MalformedXML
        );
        let nnv = "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>";
        assert_eq!(code(&exp(nnv)), S3ErrorCode::InvalidArgument);
        assert_eq!(code(&exp("")), S3ErrorCode::InvalidArgument);
        let abort_tags = "<Rule><ID>r</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>\
            <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>";
        assert_eq!(code(abort_tags), S3ErrorCode::InvalidRequest);
        let two = exp("<Expiration><Days>1</Days></Expiration>");
        assert_eq!(code(&format!("{two}{two}")), S3ErrorCode::InvalidArgument);
        let long = format!(
            "<Rule><ID>{}</ID><Prefix/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
            "a".repeat(256)
        );
        assert_eq!(code(&long), S3ErrorCode::InvalidArgument);
        assert_eq!(code(&two.replace("Enabled", "enabled")), S3ErrorCode::MalformedXML);
        assert_eq!(code(&two.repeat(1001).replace("<ID>r</ID>", "")), S3ErrorCode::MalformedXML);
        assert_eq!(code(""), S3ErrorCode::MalformedXML);
        let transition = exp("<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>");
        assert_eq!(code(&transition), S3ErrorCode::InvalidStorageClass);
        let order = exp(
            "<Transition><Days>10</Days><StorageClass>GLACIER</StorageClass></Transition><Expiration><Days>5</Days></Expiration>",
        );
        assert_eq!(parse(&doc(&order), &["GLACIER".into()]).unwrap_err().code, S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn due_times_round_to_the_next_midnight() {
        let aws = Clock::new(None);
        let t = 10 * DAY_MS + 3_600_000;
        assert_eq!(aws.due(t, &When::Days(1)), 12 * DAY_MS);
        assert_eq!(aws.due(10 * DAY_MS, &When::Days(1)), 11 * DAY_MS);
        let scaled = Clock::new(Some(10));
        assert_eq!(scaled.due(1234, &When::Days(2)), 21_234);
    }

    #[test]
    fn filters_need_every_condition() {
        let rules = parse(
            &doc("<Rule><ID>r</ID><Filter><Prefix>a/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag><ObjectSizeLessThan>10</ObjectSizeLessThan></Filter>\
                <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"),
            &[],
        )
        .unwrap();
        let tags = vec![("k".to_string(), "v".to_string())];
        let clock = Clock::new(None);
        assert!(rules.expiry(clock, "a/x", 5, &tags, 0).is_some());
        assert!(rules.expiry(clock, "b/x", 5, &tags, 0).is_none());
        assert!(rules.expiry(clock, "a/x", 10, &tags, 0).is_none());
        assert!(rules.expiry(clock, "a/x", 5, &[], 0).is_none());
    }
}
