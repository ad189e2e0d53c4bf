//! Who may do what: the node's users and their canonical ids, access
//! control lists, and the one function that decides a request
//! (`decide`), from the bucket policy, the bucket's and object's ACLs, the
//! bucket's Object Ownership and Public Access Block settings (AWS user
//! guide, "Identity and Access Management for Amazon S3", "Access control
//! list (ACL) overview", "How Amazon S3 authorizes a request").

use std::collections::HashMap;

use sha2::Digest;

use super::error::{S3Error, S3ErrorCode};
use super::policy::{self, RequestFacts};
use crate::engine::types::BucketState;

/// One user of the node.
#[derive(Clone, Debug)]
pub struct User {
    pub access_key: String,
    secret_key: String,
    /// The 64-hex-digit canonical user id ACLs and Owner elements name.
    pub id: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// The node's users by access key, canonical id and e-mail. The first one
/// added is the node's administrator.
#[derive(Default, Clone)]
pub struct Users {
    all: Vec<User>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
}

/// A user's canonical id when the users file names none: derived from the
/// access key, so it is the same on every start and every node.
pub fn derived_canonical_id(access_key: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("kaligon canonical user id\0{access_key}")))
}

impl User {
    pub fn new(
        access_key: String,
        secret_key: String,
        id: String,
        display_name: String,
        email: Option<String>,
    ) -> User {
        User { access_key, secret_key, id, display_name, email }
    }
}

impl Users {
    /// Adds a user with its derived canonical id and the access key as display name.
    pub fn add(&mut self, access_key: String, secret_key: String) {
        let id = derived_canonical_id(&access_key);
        self.add_user(User { display_name: access_key.clone(), access_key, secret_key, id, email: None });
    }

    /// Adds a user; a later entry with the same access key replaces the earlier.
    pub fn add_user(&mut self, user: User) {
        let at = match self.by_key.get(&user.access_key) {
            Some(&i) => {
                self.all[i] = user.clone();
                i
            }
            None => {
                self.all.push(user.clone());
                self.all.len() - 1
            }
        };
        self.by_key.insert(user.access_key.clone(), at);
        self.by_id.insert(user.id.clone(), at);
        if let Some(e) = &user.email {
            self.by_email.insert(e.to_ascii_lowercase(), at);
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
    pub fn by_key(&self, access_key: &str) -> Option<&User> {
        self.by_key.get(access_key).map(|&i| &self.all[i])
    }
    pub fn by_id(&self, id: &str) -> Option<&User> {
        self.by_id.get(id).map(|&i| &self.all[i])
    }
    pub fn by_email(&self, email: &str) -> Option<&User> {
        self.by_email.get(&email.to_ascii_lowercase()).map(|&i| &self.all[i])
    }
    /// The administrator: the first user.
    pub fn admin(&self) -> Option<&User> {
        self.all.first()
    }
    /// (canonical id, display name) of the user with this access key; a key
    /// no longer in the users file still shows as a stable id.
    pub fn owner_of(&self, access_key: &str) -> (String, String) {
        match self.by_key(access_key) {
            Some(u) => (u.id.clone(), u.display_name.clone()),
            None => (derived_canonical_id(access_key), access_key.to_owned()),
        }
    }
}

impl crate::auth::SecretStore for Users {
    fn secret_key(&self, access_key: &str) -> Option<String> {
        self.by_key(access_key).map(|u| u.secret_key.clone())
    }
}

/// An ACL permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

impl Perm {
    pub const ALL: [Perm; 5] = [Perm::FullControl, Perm::Write, Perm::WriteAcp, Perm::Read, Perm::ReadAcp];

    pub fn name(self) -> &'static str {
        match self {
            Perm::Read => "READ",
            Perm::Write => "WRITE",
            Perm::ReadAcp => "READ_ACP",
            Perm::WriteAcp => "WRITE_ACP",
            Perm::FullControl => "FULL_CONTROL",
        }
    }
    pub fn parse(s: &str) -> Option<Perm> {
        Perm::ALL.into_iter().find(|p| p.name() == s)
    }
    /// Whether a grant of `self` gives `want`.
    fn covers(self, want: Perm) -> bool {
        self == want || self == Perm::FullControl
    }
}

/// The predefined groups a grant can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    AllUsers,
    AuthenticatedUsers,
    LogDelivery,
}

impl Group {
    pub fn uri(self) -> &'static str {
        match self {
            Group::AllUsers => "http://acs.amazonaws.com/groups/global/AllUsers",
            Group::AuthenticatedUsers => "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
            Group::LogDelivery => "http://acs.amazonaws.com/groups/s3/LogDelivery",
        }
    }
    pub fn from_uri(uri: &str) -> Option<Group> {
        [Group::AllUsers, Group::AuthenticatedUsers, Group::LogDelivery].into_iter().find(|g| g.uri() == uri)
    }
    fn code(self) -> &'static str {
        match self {
            Group::AllUsers => "AllUsers",
            Group::AuthenticatedUsers => "AuthenticatedUsers",
            Group::LogDelivery => "LogDelivery",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    /// A user of the node, by access key (shown by canonical id).
    User(String),
    Group(Group),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    pub perm: Perm,
}

/// The grants of one bucket's or object's ACL (its owner is the resource's
/// owner). Stored as text lines `PERM u:ACCESS_KEY` / `PERM g:GROUP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub grants: Vec<Grant>,
}

impl Acl {
    /// The default: the owner has FULL_CONTROL.
    pub fn private(owner: &str) -> Acl {
        Acl { grants: vec![Grant { grantee: Grantee::User(owner.into()), perm: Perm::FullControl }] }
    }

    /// A canned ACL (`x-amz-acl`) for a resource owned by `owner` in a bucket
    /// owned by `bucket_owner`; None when the name is not one.
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Option<Acl> {
        let g = |grantee, perm| Grant { grantee, perm };
        let all = |perm| g(Grantee::Group(Group::AllUsers), perm);
        let bucket_owner_has = |perm| g(Grantee::User(bucket_owner.into()), perm);
        // S3 lists the group grants of a canned ACL before the owner's,
        // and the bucket owner's grant after the object owner's.
        let (before, after) = match name {
            "private" => (vec![], vec![]),
            "public-read" => (vec![all(Perm::Read)], vec![]),
            "public-read-write" => (vec![all(Perm::Read), all(Perm::Write)], vec![]),
            "authenticated-read" => (vec![g(Grantee::Group(Group::AuthenticatedUsers), Perm::Read)], vec![]),
            "bucket-owner-read" if owner != bucket_owner => (vec![], vec![bucket_owner_has(Perm::Read)]),
            "bucket-owner-full-control" if owner != bucket_owner => (vec![], vec![bucket_owner_has(Perm::FullControl)]),
            "bucket-owner-read" | "bucket-owner-full-control" => (vec![], vec![]),
            "log-delivery-write" => {
                let log = |perm| g(Grantee::Group(Group::LogDelivery), perm);
                (vec![log(Perm::Write), log(Perm::ReadAcp)], vec![])
            }
            _ => return None,
        };
        let mut grants = before;
        grants.extend(Acl::private(owner).grants);
        grants.extend(after);
        Some(Acl { grants })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for g in &self.grants {
            let who = match &g.grantee {
                Grantee::User(k) => format!("u:{k}"),
                Grantee::Group(gr) => format!("g:{}", gr.code()),
            };
            out.push_str(g.perm.name());
            out.push(' ');
            out.push_str(&who);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Reads `encode`'s form; a damaged line is dropped (it grants nothing).
    pub fn decode(bytes: &[u8]) -> Acl {
        let text = String::from_utf8_lossy(bytes);
        let grants = text
            .lines()
            .filter_map(|line| {
                let (perm, who) = line.split_once(' ')?;
                let grantee = match who.split_once(':')? {
                    ("u", k) => Grantee::User(k.into()),
                    ("g", "AllUsers") => Grantee::Group(Group::AllUsers),
                    ("g", "AuthenticatedUsers") => Grantee::Group(Group::AuthenticatedUsers),
                    ("g", "LogDelivery") => Grantee::Group(Group::LogDelivery),
                    _ => return None,
                };
                Some(Grant { grantee, perm: Perm::parse(perm)? })
            })
            .collect();
        Acl { grants }
    }

    /// Whether a grant to everyone or to every authenticated user is in it
    /// (what Public Access Block calls a public ACL).
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.grantee, Grantee::Group(Group::AllUsers) | Grantee::Group(Group::AuthenticatedUsers)))
    }

    /// Whether the ACL gives `who` (None: anonymous) `want`.
    fn grants(&self, who: Option<&str>, want: Perm, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            g.perm.covers(want)
                && match &g.grantee {
                    Grantee::User(k) => who == Some(k.as_str()),
                    Grantee::Group(Group::AllUsers) => !ignore_public,
                    Grantee::Group(Group::AuthenticatedUsers) => !ignore_public && who.is_some(),
                    Grantee::Group(Group::LogDelivery) => false,
                }
        })
    }
}

/// Bucket configuration documents this module reads.
pub const BUCKET_ACL: &str = "acl";
pub const BUCKET_POLICY: &str = "policy";
pub const BUCKET_OWNERSHIP: &str = "ownership";
pub const BUCKET_PUBLIC_ACCESS_BLOCK: &str = "public-access-block";

/// Object Ownership (PutBucketOwnershipControls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// ACLs disabled: the bucket owner owns every object.
    BucketOwnerEnforced,
    /// The bucket owner owns objects written with bucket-owner-full-control.
    BucketOwnerPreferred,
    /// The writer owns what it writes (S3's behaviour before April 2023, and
    /// the node's default: ACLs work on a new bucket).
    ObjectWriter,
}

impl Ownership {
    pub fn name(self) -> &'static str {
        match self {
            Ownership::BucketOwnerEnforced => "BucketOwnerEnforced",
            Ownership::BucketOwnerPreferred => "BucketOwnerPreferred",
            Ownership::ObjectWriter => "ObjectWriter",
        }
    }
    pub fn parse(s: &str) -> Option<Ownership> {
        [Ownership::BucketOwnerEnforced, Ownership::BucketOwnerPreferred, Ownership::ObjectWriter]
            .into_iter()
            .find(|o| o.name() == s)
    }
    pub fn of(bucket: &BucketState) -> Ownership {
        bucket
            .config(BUCKET_OWNERSHIP)
            .and_then(|d| std::str::from_utf8(d).ok().and_then(Ownership::parse))
            .unwrap_or(Ownership::ObjectWriter)
    }
}

/// Public Access Block settings (all false when none is set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn encode(&self) -> Vec<u8> {
        let b = |v: bool| if v { '1' } else { '0' };
        [
            b(self.block_public_acls),
            b(self.ignore_public_acls),
            b(self.block_public_policy),
            b(self.restrict_public_buckets),
        ]
        .iter()
        .collect::<String>()
        .into_bytes()
    }
    pub fn decode(d: &[u8]) -> PublicAccessBlock {
        let at = |i: usize| d.get(i) == Some(&b'1');
        PublicAccessBlock {
            block_public_acls: at(0),
            ignore_public_acls: at(1),
            block_public_policy: at(2),
            restrict_public_buckets: at(3),
        }
    }
    pub fn of(bucket: &BucketState) -> PublicAccessBlock {
        bucket.config(BUCKET_PUBLIC_ACCESS_BLOCK).map(PublicAccessBlock::decode).unwrap_or_default()
    }
}

/// The bucket's ACL as stored (the private default when none is).
pub fn bucket_acl(bucket: &BucketState) -> Acl {
    bucket.config(BUCKET_ACL).map_or_else(|| Acl::private(&bucket.owner), Acl::decode)
}

/// What an operation needs from the ACLs when no policy decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A permission on the bucket's ACL.
    Bucket(Perm),
    /// A permission on the object's ACL.
    Object(Perm),
    /// Only the bucket owner (and what a policy allows).
    BucketOwner,
    /// Only the object owner or the bucket owner (tagging, attributes of
    /// one's own object).
    ObjectOwner,
}

/// The object a decision is about, as stored.
pub struct ObjectFacts<'a> {
    /// The object's owner (access key).
    pub owner: &'a str,
    /// Its ACL (None: the private default).
    pub acl: Option<Acl>,
    pub tags: &'a [(String, String)],
}

/// One access question: may `who` (None: anonymous) do `action` needing
/// `need` on `bucket` (and `key`, `object`)?
pub struct Question<'a> {
    pub who: Option<&'a str>,
    pub action: &'static str,
    pub need: Need,
    pub bucket_name: &'a str,
    pub bucket: &'a BucketState,
    pub key: Option<&'a str>,
    pub object: Option<ObjectFacts<'a>>,
    pub facts: &'a RequestFacts<'a>,
}

/// The common case, decided before anything is decoded or gathered: the
/// bucket owner, in a bucket with no policy, on the bucket with its default
/// ACL (`object_private` None) or on an object it owns with the default
/// ACL (`Some(true)`).
pub fn owner_shortcut(who: Option<&str>, bucket: &BucketState, object_private: Option<bool>) -> bool {
    who == Some(bucket.owner.as_str())
        && bucket.config(BUCKET_POLICY).is_none()
        && match object_private {
            None => bucket.config(BUCKET_ACL).is_none(),
            Some(private) => private,
        }
}

/// Decides one request: an explicit Deny in the bucket policy wins; then an
/// Allow from the policy or the ACLs (ignored under BucketOwnerEnforced,
/// and public grants ignored under IgnorePublicAcls); else AccessDenied.
/// A bucket with no policy and default ACLs costs one comparison.
pub fn decide(q: &Question<'_>) -> Result<(), S3Error> {
    let policy_doc = q.bucket.config(BUCKET_POLICY);
    let is_owner = q.who == Some(q.bucket.owner.as_str());
    // The common case: the bucket owner, no policy, an object it owns.
    if policy_doc.is_none() && is_owner && (q.bucket.config(BUCKET_ACL).is_none() || q.object.is_some()) {
        let object_is_owners = q.object.as_ref().is_none_or(|o| o.owner == q.bucket.owner && o.acl.is_none());
        if object_is_owners || Ownership::of(q.bucket) == Ownership::BucketOwnerEnforced {
            return Ok(());
        }
    }
    let pab = PublicAccessBlock::of(q.bucket);
    if let Some(doc) = policy_doc {
        // A stored policy was validated when put; one that no longer parses grants nothing.
        if let Some(p) = policy::parsed(doc) {
            let public = pab.restrict_public_buckets && policy::is_public(&p);
            match p.evaluate(q, q.facts) {
                policy::Verdict::Deny => return Err(denied()),
                // Under RestrictPublicBuckets a public policy serves only the owner.
                policy::Verdict::Allow if !public || is_owner => return Ok(()),
                _ => {}
            }
        }
    }
    let enforced = Ownership::of(q.bucket) == Ownership::BucketOwnerEnforced;
    let ignore_public = pab.ignore_public_acls;
    let ok = match q.need {
        Need::BucketOwner => is_owner,
        Need::ObjectOwner => is_owner || q.object.as_ref().is_some_and(|o| q.who == Some(o.owner)),
        Need::Bucket(_) if enforced => is_owner,
        Need::Bucket(perm) => {
            // The owner may always read and change its ACL.
            (is_owner && matches!(perm, Perm::ReadAcp | Perm::WriteAcp))
                || bucket_acl(q.bucket).grants(q.who, perm, ignore_public)
        }
        Need::Object(_) if enforced => is_owner,
        Need::Object(perm) => match &q.object {
            None => false,
            Some(o) => {
                let object_owner = q.who == Some(o.owner);
                (object_owner && matches!(perm, Perm::ReadAcp | Perm::WriteAcp))
                    || o.acl.clone().unwrap_or_else(|| Acl::private(o.owner)).grants(q.who, perm, ignore_public)
            }
        },
    };
    if ok { Ok(()) } else { Err(denied()) }
}

/// Where the access to an operation is decided.
pub enum Check {
    /// Not about one bucket (ListBuckets, CreateBucket): a signed request suffices.
    Account,
    /// Before the handler runs: the action and what it needs from the ACLs.
    Bucket(&'static str, Need),
    /// In the handler, once the object's version (its owner and ACL) is read.
    Object,
}

/// Every operation's action name (as policies name it) and ACL permission,
/// as "Amazon S3 actions" and the ACL overview's permission table give them.
pub fn check_of(op: super::route::Op, by_version: bool) -> Check {
    use super::route::Op as O;
    let bucket = |action, perm| Check::Bucket(action, Need::Bucket(perm));
    let owner = |action| Check::Bucket(action, Need::BucketOwner);
    match op {
        O::ListBuckets | O::CreateBucket | O::NotImplemented(_) | O::AdminUsage | O::AdminMetrics => Check::Account,
        O::GetObject
        | O::HeadObject
        | O::GetObjectAttributes
        | O::GetObjectAcl
        | O::PutObjectAcl
        | O::GetObjectTagging
        | O::PutObjectTagging
        | O::DeleteObjectTagging => Check::Object,
        O::HeadBucket | O::ListObjects | O::ListObjectsV2 => bucket("s3:ListBucket", Perm::Read),
        O::ListObjectVersions => bucket("s3:ListBucketVersions", Perm::Read),
        O::ListMultipartUploads => bucket("s3:ListBucketMultipartUploads", Perm::Read),
        O::ListParts => bucket("s3:ListMultipartUploadParts", Perm::Read),
        O::PutObject
        | O::PostObject
        | O::CopyObject
        | O::CreateMultipartUpload
        | O::UploadPart
        | O::UploadPartCopy
        | O::CompleteMultipartUpload => bucket("s3:PutObject", Perm::Write),
        O::AbortMultipartUpload => bucket("s3:AbortMultipartUpload", Perm::Write),
        O::DeleteObject | O::DeleteObjects if by_version => bucket("s3:DeleteObjectVersion", Perm::Write),
        O::DeleteObject | O::DeleteObjects => bucket("s3:DeleteObject", Perm::Write),
        O::GetBucketAcl => bucket("s3:GetBucketAcl", Perm::ReadAcp),
        O::PutBucketAcl => bucket("s3:PutBucketAcl", Perm::WriteAcp),
        O::DeleteBucket => owner("s3:DeleteBucket"),
        O::GetBucketLocation => owner("s3:GetBucketLocation"),
        O::GetBucketVersioning => owner("s3:GetBucketVersioning"),
        O::PutBucketVersioning => owner("s3:PutBucketVersioning"),
        O::PutBucketTagging | O::DeleteBucketTagging => owner("s3:PutBucketTagging"),
        O::GetBucketTagging => owner("s3:GetBucketTagging"),
        O::PutBucketLifecycleConfiguration | O::DeleteBucketLifecycle => owner("s3:PutLifecycleConfiguration"),
        O::GetBucketLifecycleConfiguration => owner("s3:GetLifecycleConfiguration"),
        O::PutBucketCors | O::DeleteBucketCors => owner("s3:PutBucketCORS"),
        O::GetBucketCors => owner("s3:GetBucketCORS"),
        O::GetBucketPolicy => owner("s3:GetBucketPolicy"),
        O::PutBucketPolicy => owner("s3:PutBucketPolicy"),
        O::DeleteBucketPolicy => owner("s3:DeleteBucketPolicy"),
        O::GetBucketPolicyStatus => owner("s3:GetBucketPolicyStatus"),
        O::GetBucketOwnershipControls => owner("s3:GetBucketOwnershipControls"),
        O::PutBucketOwnershipControls | O::DeleteBucketOwnershipControls => owner("s3:PutBucketOwnershipControls"),
        O::GetPublicAccessBlock => owner("s3:GetBucketPublicAccessBlock"),
        O::PutPublicAccessBlock | O::DeletePublicAccessBlock => owner("s3:PutBucketPublicAccessBlock"),
    }
}

pub fn denied() -> S3Error {
    S3Error::new(S3ErrorCode::AccessDenied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_encoding_round_trips() {
        let acl = Acl::canned("public-read-write", "AK1", "AK2").unwrap();
        assert_eq!(Acl::decode(&acl.encode()), acl);
        assert!(acl.is_public());
        let own = Acl::canned("bucket-owner-full-control", "AK1", "AK2").unwrap();
        assert_eq!(own.grants.len(), 2);
        assert_eq!(Acl::canned("bucket-owner-full-control", "AK1", "AK1").unwrap(), Acl::private("AK1"));
        assert!(Acl::canned("public", "a", "b").is_none());
    }

    #[test]
    fn grants_follow_groups() {
        let acl = Acl::canned("authenticated-read", "o", "o").unwrap();
        assert!(acl.grants(Some("x"), Perm::Read, false));
        assert!(!acl.grants(None, Perm::Read, false));
        assert!(!acl.grants(Some("x"), Perm::Read, true));
        assert!(acl.grants(Some("o"), Perm::Write, false));
        let public = Acl::canned("public-read", "o", "o").unwrap();
        assert!(public.grants(None, Perm::Read, false));
        assert!(!public.grants(None, Perm::Write, false));
    }

    #[test]
    fn canonical_ids_are_stable_hex() {
        let id = derived_canonical_id("AKIA");
        assert_eq!(id.len(), 64);
        assert_eq!(id, derived_canonical_id("AKIA"));
        assert_ne!(id, derived_canonical_id("AKIB"));
    }
}
