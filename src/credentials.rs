//! Users and their keys: `KALIGON_ACCESS_KEY`/`KALIGON_SECRET_KEY` for the
//! first user, or a key pair generated on first start and kept (mode 0600)
//! in the data directory; `--users FILE` adds more.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde::Deserialize;

use crate::config::Config;
use crate::s3::Users;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read users file {path}: {why}")]
    UsersFile { path: String, why: String },
    #[error("cannot store generated credentials in {path}: {source}")]
    Store { path: String, source: std::io::Error },
}

#[derive(Deserialize)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserFileEntry>,
}

#[derive(Deserialize)]
struct UserEntry {
    access_key: String,
    secret_key: String,
}

/// A `[[user]]` of the users file: keys, and optionally the identity ACLs
/// and Owner elements show (a canonical id derived from the access key and
/// the access key as display name otherwise). An entry with the first
/// user's access key sets that user's identity.
#[derive(Deserialize)]
struct UserFileEntry {
    access_key: String,
    secret_key: String,
    canonical_id: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
}

fn random_key(len: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| alphabet[*b as usize % alphabet.len()] as char).collect()
}

pub fn load(config: &Config) -> Result<Users, Error> {
    let mut users = Users::default();
    match (std::env::var("KALIGON_ACCESS_KEY"), std::env::var("KALIGON_SECRET_KEY")) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => users.add(a, s),
        _ => {
            let (a, s) = stored_or_generated(config)?;
            users.add(a, s);
        }
    }
    if let Some(path) = &config.users {
        let err = |why: String| Error::UsersFile { path: path.display().to_string(), why };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for u in file.user {
            if let Some(id) = &u.canonical_id
                && (id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(err(format!("canonical_id of {} is not 64 hex digits", u.access_key)));
            }
            let id = u
                .canonical_id
                .map_or_else(|| crate::s3::access::derived_canonical_id(&u.access_key), |i| i.to_ascii_lowercase());
            let display_name = u.display_name.unwrap_or_else(|| u.access_key.clone());
            users.add_user(crate::s3::access::User::new(u.access_key, u.secret_key, id, display_name, u.email));
        }
    }
    Ok(users)
}

fn stored_or_generated(config: &Config) -> Result<(String, String), Error> {
    let path = config.data[0].join("credentials.toml");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(UserEntry { access_key, secret_key }) = toml::from_str::<UserEntry>(&text)
    {
        return Ok((access_key, secret_key));
    }
    let access = format!("KLGN{}", random_key(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
    let secret = random_key(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    let store = |source| Error::Store { path: path.display().to_string(), source };
    std::fs::create_dir_all(&config.data[0]).map_err(store)?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(store)?;
    writeln!(f, "access_key = \"{access}\"\nsecret_key = \"{secret}\"").map_err(store)?;
    f.sync_all().map_err(store)?;
    println!("kaligon: generated credentials (stored in {}):", path.display());
    println!("  AWS_ACCESS_KEY_ID={access}");
    println!("  AWS_SECRET_ACCESS_KEY={secret}");
    Ok((access, secret))
}
