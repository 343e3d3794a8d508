//! Records in MongoDB: the record as a document (labels a real subdocument, `received_at` a
//! BSON date), and optionally the photo, inline or in GridFS.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BuildError, Built};

/// Where the mongo actor keeps the photo's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MongoImage {
    /// Not at all: another actor (s3, disk) keeps the photo.
    #[default]
    None,
    /// In the record's document, field `image_bytes`; photos up to 15 MiB.
    Inline,
    /// In GridFS, any size.
    Gridfs,
}

/// MongoDB: the record as a queryable document; the photo too when there is no S3.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string, e.g. `mongodb://user:password@db1,db2/?replicaSet=rs0`.
    pub uri: String,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_collection")]
    pub collection: String,
    /// Write concern `w`: `majority` or a number of nodes.
    #[serde(default = "default_write_concern")]
    pub write_concern: String,
    /// Wait for the journal before a write counts as done.
    #[serde(default = "yes")]
    pub journal: bool,
    #[serde(default)]
    pub image: MongoImage,
    /// GridFS bucket for `image = "gridfs"`.
    #[serde(default = "default_bucket")]
    pub gridfs_bucket: String,
    /// Longest time to open a connection, e.g. `5s`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub connect_timeout: Duration,
    /// Longest time to find a server to send an operation to.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub server_selection_timeout: Duration,
    /// Longest time one operation (a store, a read, a ping) may take.
    #[serde(default = "default_operation_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub operation_timeout: Duration,
}

fn default_database() -> String {
    "librarian".into()
}
fn default_collection() -> String {
    "submissions".into()
}
fn default_write_concern() -> String {
    "majority".into()
}
fn default_bucket() -> String {
    "images".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_operation_timeout() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}

#[cfg(feature = "mongo")]
mod store;
#[cfg(feature = "mongo")]
pub use store::MongoActor;

/// Parses the URI, without dialling.
#[cfg(feature = "mongo")]
pub(crate) async fn check(config: &MongoConfig) -> Result<(), BuildError> {
    mongodb::options::ClientOptions::parse(&config.uri)
        .await
        .map(drop)
        .map_err(BuildError::MongoUri)
}

#[cfg(feature = "mongo")]
pub(crate) async fn build(config: &MongoConfig) -> Result<Built, BuildError> {
    use std::sync::Arc;
    let actor = Arc::new(MongoActor::open(config).await.map_err(BuildError::Mongo)?);
    Ok(Built {
        writer: actor.clone(),
        records: Some(actor.clone()),
        images: Some(actor.clone()),
        history: Some(actor),
    })
}

#[cfg(not(feature = "mongo"))]
pub(crate) async fn check(_: &MongoConfig) -> Result<(), BuildError> {
    Err(BuildError::NotBuiltIn("mongo"))
}

#[cfg(not(feature = "mongo"))]
pub(crate) async fn build(_: &MongoConfig) -> Result<Built, BuildError> {
    Err(BuildError::NotBuiltIn("mongo"))
}
