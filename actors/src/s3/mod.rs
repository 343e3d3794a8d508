//! Photos in S3 (or any S3-compatible server): `<prefix><id>.<ext>` with its content type and
//! the record id and sha256 as metadata, created only when absent; optionally the record JSON
//! beside it as `<prefix><id>.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BuildError, Built};
/// S3 or an S3-compatible server (MinIO, Ceph, R2, …): the photos, and the record JSON beside
/// each photo.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Put before every key, e.g. `images/`.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// The server's URL for S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A PEM file of certificate authorities to trust besides the system's, for an `https`
    /// endpoint whose certificate a private CA signed. Relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    pub ca_file: Option<PathBuf>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    #[serde(default)]
    pub path_style: bool,
    /// Static credentials; without them the standard AWS chain is used (AWS_ACCESS_KEY_ID,
    /// profiles, web identity, container and instance roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// Also store the record as `<prefix><id>.json`, so this actor can answer record reads.
    #[serde(default = "yes")]
    pub record_json: bool,
    /// Photos larger than this are uploaded in parts of this size.
    #[serde(default = "default_multipart_bytes")]
    pub multipart_threshold_bytes: usize,
    /// Longest time to open a connection, e.g. `5s`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub connect_timeout: Duration,
    /// Longest time one S3 operation, retries included, may take.
    #[serde(default = "default_operation_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub operation_timeout: Duration,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn yes() -> bool {
    true
}
fn default_multipart_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_operation_timeout() -> Duration {
    Duration::from_secs(60)
}

#[cfg(feature = "s3")]
mod store;
#[cfg(feature = "s3")]
pub use store::S3Actor;

/// Checks the values that need no server, and reads `ca_file` (relative to `base_dir`).
#[cfg(feature = "s3")]
pub(crate) fn check(config: &S3Config, base_dir: &Path) -> Result<(), BuildError> {
    S3Actor::check(config, base_dir)
        .map(drop)
        .map_err(BuildError::Invalid)
}

#[cfg(feature = "s3")]
pub(crate) async fn build(config: &S3Config, base_dir: &Path) -> Result<Built, BuildError> {
    use std::sync::Arc;

    use crate::{Actor, ActorError};
    let actor = S3Actor::open(config, base_dir)
        .await
        .map_err(BuildError::S3Client)?;
    // The S3 client connects lazily: ask for the bucket now, so a wrong endpoint, bucket or
    // key stops the start instead of failing the first submission.
    actor.ready().await.map_err(|e| match e {
        ActorError::Refused(_) => BuildError::S3Refused(e),
        _ => BuildError::S3Unreachable(e),
    })?;
    let actor = Arc::new(actor);
    Ok(Built {
        writer: actor.clone(),
        records: Some(actor.clone()),
        images: Some(actor),
        history: None,
    })
}

#[cfg(not(feature = "s3"))]
pub(crate) fn check(_: &S3Config, _: &Path) -> Result<(), BuildError> {
    Err(BuildError::NotBuiltIn("s3"))
}

#[cfg(not(feature = "s3"))]
pub(crate) async fn build(_: &S3Config, _: &Path) -> Result<Built, BuildError> {
    Err(BuildError::NotBuiltIn("s3"))
}
