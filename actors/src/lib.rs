//! The actor trait and Librarian's built-in storage actors.
//!
//! An actor is a named destination for accepted records. Each kind has a typed config;
//! [`ActorConfig`] gathers them in one closed enum and [`build`] is the one place that turns a
//! config into a component.

mod disk;
mod mongo;
mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use librarian_model::{ImageFormat, Record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::disk::{DiskActor, DiskConfig, remove_if_present, write_atomically};
#[cfg(feature = "mongo")]
pub use crate::mongo::MongoActor;
pub use crate::mongo::{MongoConfig, MongoImage};
#[cfg(feature = "s3")]
pub use crate::s3::S3Actor;
pub use crate::s3::S3Config;

/// Which page of history to read: newest first.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Only records of these pipelines (the ones the caller may read); none lists nothing.
    pub pipelines: Vec<String>,
    pub limit: usize,
    /// Only records received before this one (the cursor of the previous page).
    pub before: Option<HistoryCursor>,
    /// The stored size of the page's records together: the page ends before the record that
    /// would pass it, and a record larger than all of it is skipped.
    pub max_bytes: usize,
}

/// One page of history.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// Newest first.
    pub records: Vec<Record>,
    /// Records of the page left out: unreadable, or larger than a page holds.
    pub skipped: Vec<Skipped>,
    /// The last record examined (listed or skipped): the next page starts after it.
    pub last: Option<Uuid>,
    /// Whether the page ended at its limit or its size, so more may follow.
    pub more: bool,
}

/// A record a history page could not list, and why.
#[derive(Debug)]
pub struct Skipped {
    /// Its id, or its stored key when the id itself cannot be read.
    pub id: String,
    pub reason: String,
}

/// Fills a page from stored records, newest first, within the query's limits.
pub(crate) struct PageBuilder<'q> {
    query: &'q HistoryQuery,
    page: HistoryPage,
    bytes: usize,
    examined: usize,
}

impl<'q> PageBuilder<'q> {
    pub(crate) fn new(query: &'q HistoryQuery) -> Self {
        Self {
            query,
            page: HistoryPage::default(),
            bytes: 0,
            examined: 0,
        }
    }

    /// Whether a stored record of `size` bytes still fits; when it does not, the page ends
    /// here and says more follow. A record larger than a whole page is let through to
    /// [`PageBuilder::add`], which skips it, so it cannot end every page at its place.
    pub(crate) fn fits(&mut self, size: usize) -> bool {
        let fits = size > self.query.max_bytes || self.bytes + size <= self.query.max_bytes;
        if !fits {
            self.page.more = true;
        }
        fits
    }

    /// Lists the record `read` gives (its stored size being `size`), or skips it: one larger
    /// than a whole page is not read at all, one that cannot be read is named with the cause.
    pub(crate) fn add(
        &mut self,
        id: Uuid,
        size: usize,
        read: impl FnOnce() -> Result<Option<Record>, ActorError>,
    ) {
        self.examined += 1;
        self.page.last = Some(id);
        let reason = match size > self.query.max_bytes {
            true => format!(
                "{size} bytes stored, more than a history page holds ({}); read it by its id",
                self.query.max_bytes
            ),
            false => match read() {
                Ok(Some(record)) => {
                    self.bytes += size;
                    self.page.records.push(record);
                    return;
                }
                // Removed since the page was planned.
                Ok(None) => return,
                Err(e) => e.to_string(),
            },
        };
        self.examined -= 1;
        self.skip(id.to_string(), reason);
    }

    /// Leaves out a record that cannot be listed, named by `id` (or its stored key).
    pub(crate) fn skip(&mut self, id: String, reason: String) {
        self.examined += 1;
        self.page.skipped.push(Skipped { id, reason });
    }

    pub(crate) fn finish(mut self) -> HistoryPage {
        self.page.more |= self.examined == self.query.limit;
        self.page
    }
}

#[derive(Clone, Copy, Debug)]
pub enum HistoryCursor {
    Record(Uuid),
    Time(DateTime<Utc>),
}

/// Stores accepted records: every actor kind is one. What an actor can read back is a
/// separate trait each ([`RecordReader`], [`ImageReader`], [`HistoryReader`]), handed out by
/// [`build`] only where the actor's config lets it answer.
#[async_trait]
pub trait Actor: Send + Sync {
    /// Where this actor will put the record; known before storing, so every actor can store
    /// the complete record.
    fn location(&self, record: &Record) -> String;

    /// Stores the record and the image's original bytes, completely or not at all.
    /// Fails with [`ActorError::AlreadyExists`] when the id already holds a record.
    async fn store(&self, record: &Record, image: &[u8]) -> Result<(), ActorError>;

    /// Removes what [`Actor::store`] stored for this id; removing nothing is not an error.
    async fn remove(&self, id: Uuid) -> Result<(), ActorError>;

    /// Whether the destination is reachable and writable now.
    async fn ready(&self) -> Result<(), ActorError>;
}

/// Reads a stored record back by its id.
#[async_trait]
pub trait RecordReader: Send + Sync {
    async fn record(&self, id: Uuid) -> Result<Option<Record>, ActorError>;
}

/// Reads a stored image back.
#[async_trait]
pub trait ImageReader: Send + Sync {
    /// The original bytes of the record's image, stored in this format.
    async fn image(&self, id: Uuid, format: ImageFormat) -> Result<Option<Vec<u8>>, ActorError>;
}

/// Answers questions about all records at once, which needs an index over them: history
/// pages, and earlier submissions of the same photo.
#[async_trait]
pub trait HistoryReader: Send + Sync {
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, ActorError>;

    /// The earliest record of `pipeline` holding an image with this sha256: never one of
    /// another pipeline, whose callers may be others.
    async fn find_image(&self, sha256: &str, pipeline: &str) -> Result<Option<Uuid>, ActorError>;
}

/// Which reads an actor's config lets it answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    pub records: bool,
    pub images: bool,
    pub history: bool,
}

/// A built actor: the writer, and the readers its config allows (as [`ActorConfig::reads`]
/// says).
pub struct Built {
    pub writer: Arc<dyn Actor>,
    pub records: Option<Arc<dyn RecordReader>>,
    pub images: Option<Arc<dyn ImageReader>>,
    pub history: Option<Arc<dyn HistoryReader>>,
}

impl Built {
    /// Keeps the readers `reads` allows, of those the actor's type has.
    fn limited_to(self, reads: Reads) -> Self {
        Self {
            writer: self.writer,
            records: self.records.filter(|_| reads.records),
            images: self.images.filter(|_| reads.images),
            history: self.history.filter(|_| reads.history),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("a record with id {0} is already stored")]
    AlreadyExists(Uuid),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    /// The store answers and refuses (no such bucket, access denied): retrying does not help.
    #[error("the store refuses: {0}")]
    Refused(String),
    #[error("the image has {bytes} bytes; this actor stores at most {limit}")]
    TooLarge { bytes: u64, limit: u64 },
}

/// An actor's configuration, chosen by `kind`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ActorConfig {
    /// Files on local disk: `<dir>/<id>.<ext>` (the original bytes) and `<dir>/<id>.json`.
    Disk(DiskConfig),
    /// MongoDB: the record as a queryable document; the photo too (inline or GridFS) when
    /// there is no S3.
    Mongo(MongoConfig),
    /// S3 or an S3-compatible server: the photo, and the record JSON beside it.
    S3(S3Config),
}

impl ActorConfig {
    /// What the actor this config builds can read back.
    pub fn reads(&self) -> Reads {
        match self {
            ActorConfig::Disk(_) => Reads {
                records: true,
                images: true,
                history: true,
            },
            ActorConfig::Mongo(c) => Reads {
                records: true,
                images: c.image != MongoImage::None,
                history: true,
            },
            ActorConfig::S3(c) => Reads {
                records: c.record_json,
                images: true,
                history: false,
            },
        }
    }
}

/// Why an actor could not be built: its config, or its server or folder.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kind's cargo feature was off when this binary was built.
    #[error(
        "this build of librarian has no `{0}` actor: it needs the cargo feature `{0}`, which \
         the default build and the Docker image have (a `--no-default-features` build does \
         not; add `--features {0}`)"
    )]
    NotBuiltIn(&'static str),
    #[cfg(feature = "mongo")]
    #[error("uri: {0}")]
    MongoUri(#[source] mongodb::error::Error),
    #[error("{0}")]
    Invalid(#[source] ActorError),
    #[error("cannot use folder {}: {source}", .dir.display())]
    Folder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to MongoDB: {0}")]
    Mongo(#[source] ActorError),
    #[error("cannot prepare S3: {0}")]
    S3Client(#[source] ActorError),
    /// S3 answered, and refused: the bucket or the credentials.
    #[error("{0}")]
    S3Refused(#[source] ActorError),
    #[error("could not connect to S3: {0}")]
    S3Unreachable(#[source] ActorError),
}

/// Checks what can be checked of an actor's config without touching network or the data:
/// files it names are read, relative to `base_dir` (the config file's folder).
pub async fn check(config: &ActorConfig, base_dir: &Path) -> Result<(), BuildError> {
    match config {
        ActorConfig::Disk(_) => Ok(()),
        ActorConfig::Mongo(c) => mongo::check(c).await,
        ActorConfig::S3(c) => s3::check(c, base_dir),
    }
}

/// Builds the actor a config describes, with the readers [`ActorConfig::reads`] names;
/// network actors connect and prepare what they need.
pub async fn build(config: &ActorConfig, base_dir: &Path) -> Result<Built, BuildError> {
    let built = match config {
        ActorConfig::Disk(c) => {
            let actor =
                Arc::new(
                    DiskActor::open(c)
                        .await
                        .map_err(|source| BuildError::Folder {
                            dir: c.dir.clone(),
                            source,
                        })?,
                );
            Ok(Built {
                writer: actor.clone(),
                records: Some(actor.clone()),
                images: Some(actor.clone()),
                history: Some(actor),
            })
        }
        ActorConfig::Mongo(c) => mongo::build(c).await,
        ActorConfig::S3(c) => s3::build(c, base_dir).await,
    }?;
    Ok(built.limited_to(config.reads()))
}
