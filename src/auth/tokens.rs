//! Contributor tokens: `lib_<id>_<secret>`, of which only an Argon2 hash of the secret is kept,
//! in a JSON file the CLI manages and the server rereads when it changes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenEntry {
    pub id: String,
    pub name: String,
    /// Argon2id hash of the secret (PHC string).
    pub hash: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Pipelines the token may submit to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// After a rotation, the old secret's hash, valid until `previous_valid_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token file {0}: {1}")]
    File(String, String),
    #[error("no token named or numbered `{0}`")]
    Unknown(String),
    #[error("a token named `{0}` exists already")]
    Duplicate(String),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TokenError {
    TokenError::File(path.display().to_string(), e.to_string())
}

fn read(path: &Path) -> Result<TokenFile, TokenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| file_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(file_error(path, e)),
    }
}

fn write(path: &Path, file: &TokenFile) -> Result<(), TokenError> {
    let json = serde_json::to_vec_pretty(file).map_err(|e| file_error(path, e))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_error(path, e))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| file_error(path, e))?;
    std::fs::write(tmp.path(), json).map_err(|e| file_error(path, e))?;
    tmp.persist(path).map_err(|e| file_error(path, e.error))?;
    Ok(())
}

fn new_secret() -> (String, String) {
    let mut random = Vec::with_capacity(32);
    random.extend_from_slice(Uuid::new_v4().as_bytes());
    random.extend_from_slice(Uuid::new_v4().as_bytes());
    (
        Uuid::new_v4().simple().to_string(),
        URL_SAFE_NO_PAD.encode(random),
    )
}

fn hash(secret: &str) -> Result<String, TokenError> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| TokenError::File("hash".into(), e.to_string()))
}

fn verifies(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

fn find<'a>(file: &'a mut TokenFile, key: &str) -> Result<&'a mut TokenEntry, TokenError> {
    file.tokens
        .iter_mut()
        .find(|t| t.id == key || t.name == key)
        .ok_or_else(|| TokenError::Unknown(key.to_owned()))
}

/// Creates a token; the returned string is the only copy of its secret.
pub fn create(
    path: &Path,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    pipelines: Vec<String>,
) -> Result<String, TokenError> {
    let mut file = read(path)?;
    if file.tokens.iter().any(|t| t.name == name) {
        return Err(TokenError::Duplicate(name.to_owned()));
    }
    let (id, secret) = new_secret();
    file.tokens.push(TokenEntry {
        id: id.clone(),
        name: name.to_owned(),
        hash: hash(&secret)?,
        created_at: Utc::now(),
        expires_at,
        pipelines,
        revoked_at: None,
        previous_hash: None,
        previous_valid_until: None,
    });
    write(path, &file)?;
    Ok(format!("lib_{id}_{secret}"))
}

pub fn list(path: &Path) -> Result<Vec<TokenEntry>, TokenError> {
    Ok(read(path)?.tokens)
}

pub fn revoke(path: &Path, key: &str) -> Result<(), TokenError> {
    let mut file = read(path)?;
    find(&mut file, key)?.revoked_at = Some(Utc::now());
    write(path, &file)
}

/// A new secret; the old one stays valid for `grace`.
pub fn rotate(path: &Path, key: &str, grace: chrono::Duration) -> Result<String, TokenError> {
    let mut file = read(path)?;
    let entry = find(&mut file, key)?;
    let (_, secret) = new_secret();
    let new_hash = hash(&secret)?;
    entry.previous_hash = Some(std::mem::replace(&mut entry.hash, new_hash));
    entry.previous_valid_until = Some(Utc::now() + grace);
    let id = entry.id.clone();
    write(path, &file)?;
    Ok(format!("lib_{id}_{secret}"))
}

/// Why a bearer credential was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Revoked,
    Expired,
    /// Too many secrets were tried for this token id lately; retry after this many seconds.
    Throttled(u32),
    /// Every verification slot stayed busy; retry shortly.
    Busy,
}

/// A token that verified: its id (public, part of the token) and what it may use.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    pub id: String,
    /// Empty means every pipeline.
    pub pipelines: Vec<String>,
}

/// The token file as last read: its modification time, its tokens, and the hash each
/// already verified token (by digest) matched.
#[derive(Default)]
struct Loaded {
    modified: Option<SystemTime>,
    tokens: Vec<TokenEntry>,
    verified: HashMap<[u8; 32], String>,
}

/// Secrets tried per token id before the id is throttled: a rotation's old and new secret,
/// some typos, never a flood.
const ATTEMPTS_PER_MINUTE: u32 = 10;
/// How long a verification waits for a free slot before the caller is told to retry.
const VERIFY_WAIT: Duration = Duration::from_secs(2);

/// The server's view of the token file: reread when it changes, with verified secrets
/// remembered so that the slow hash runs once per token and file version. Hashes are checked
/// off the async runtime, a few at a time, and only [`ATTEMPTS_PER_MINUTE`] times a minute
/// per token id, so a flood of wrong secrets costs neither the runtime nor memory.
pub struct TokenStore {
    path: PathBuf,
    state: Mutex<Loaded>,
    verifying: Arc<Semaphore>,
    attempts: DefaultKeyedRateLimiter<String>,
}

impl TokenStore {
    pub fn new(path: PathBuf) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        let quota = Quota::per_minute(NonZeroU32::new(ATTEMPTS_PER_MINUTE).expect("not zero"));
        Self {
            path,
            state: Mutex::new(Loaded::default()),
            verifying: Arc::new(Semaphore::new(slots)),
            attempts: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// The entry of this id from the file as it is now, and the hash this very token matched
    /// before, if it did.
    fn lookup(&self, id: &str, digest: &[u8; 32]) -> Option<(TokenEntry, Option<String>)> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified != state.modified || modified.is_none() {
            let tokens = read(&self.path).map(|f| f.tokens).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the token file; refusing tokens");
                Vec::new()
            });
            *state = Loaded {
                modified,
                tokens,
                verified: HashMap::new(),
            };
        }
        let entry = state.tokens.iter().find(|t| t.id == id)?.clone();
        Some((entry, state.verified.get(digest).cloned()))
    }

    /// Runs the slow hash for a secret not seen before, within the limits above.
    async fn verify(&self, entry: &TokenEntry, secret: &str) -> Result<String, Refusal> {
        if let Err(not_until) = self.attempts.check_key(&entry.id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Refusal::Throttled(wait.as_secs().max(1) as u32));
        }
        self.attempts.retain_recent();
        let permit = tokio::time::timeout(VERIFY_WAIT, self.verifying.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        let (secret, current, previous) = (
            secret.to_owned(),
            entry.hash.clone(),
            entry.previous_hash.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if verifies(&secret, &current) {
                return Some(current);
            }
            previous.filter(|h| verifies(&secret, h))
        })
        .await
        .ok()
        .flatten()
        .ok_or(Refusal::Unknown)
    }

    /// The token, when it is valid now.
    pub async fn authenticate(&self, token: &str) -> Result<VerifiedToken, Refusal> {
        let (id, secret) = token
            .strip_prefix("lib_")
            .and_then(|t| t.split_once('_'))
            .ok_or(Refusal::Unknown)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let (entry, known) = self.lookup(id, &digest).ok_or(Refusal::Unknown)?;
        let matched_hash = match known {
            Some(hash) => hash,
            None => {
                let hash = self.verify(&entry, secret).await?;
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                state.verified.insert(digest, hash.clone());
                hash
            }
        };
        let now = Utc::now();
        if entry.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(Refusal::Expired);
        }
        if matched_hash != entry.hash && entry.previous_valid_until.is_none_or(|until| until <= now)
        {
            return Err(Refusal::Expired);
        }
        Ok(VerifiedToken {
            id: entry.id,
            pipelines: entry.pipelines,
        })
    }
}
