//! One submission's way through a pipeline: cheap checks, one decode, extraction, the checks
//! that need extracted facts, then every actor in order — stored everywhere or nowhere.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use librarian_actors::{
    Actor, ActorError, HistoryPage, HistoryQuery, HistoryReader, ImageReader, RecordReader,
};
use librarian_model::{
    Facts, ImageFacts, ImageFormat, Labels, MetadataReport, Record, Stored, Violation,
};
use librarian_validators::{Stage, Validator};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Access, Caller, Denied};
use crate::config::queue::SubmitMode;
use crate::extract::{self, Extracted, Extractor};
use crate::imaging::{DECODE_PIXEL_LIMIT, DecodePool, ImageError, probe};
use crate::metrics::{self, Metrics};
use crate::notify::Notifications;
use crate::notify::outbox::OutboxError;
use crate::orphans::{Orphan, Orphans};
use crate::privacy::{KeepMetadata, StripError, strip};

/// A component with the name the config gave it.
pub struct Named<T: ?Sized> {
    pub name: String,
    pub component: Arc<T>,
}

/// A named component is used as the component itself.
impl<T: ?Sized> std::ops::Deref for Named<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.component
    }
}

pub struct Pipeline {
    pub name: String,
    /// Who may submit and who may read back.
    pub access: Access,
    pub image_field: String,
    pub labels_field: String,
    pub validators: Vec<Named<dyn Validator>>,
    pub extractors: Arc<[Named<dyn Extractor>]>,
    pub actors: Vec<Named<dyn Actor>>,
    pub readers: Readers,
    pub decode_pool: Arc<DecodePool>,
    pub orphans: Arc<Orphans>,
    pub metrics: Arc<Metrics>,
    pub strip_metadata: bool,
    pub keep_metadata: Vec<KeepMetadata>,
    /// How a submission sent without a preference is answered.
    pub mode: SubmitMode,
    /// How a job fetches the photo of an `image_url`.
    pub fetch: crate::config::queue::FetchConfig,
    /// The notifiers told of this pipeline's events.
    pub notify: Vec<String>,
    /// The outbox of the service's notifiers; none when no pipeline notifies, or in a one-off
    /// command.
    pub notifications: Option<Arc<Notifications>>,
}

/// The actors a pipeline reads from: for each kind of read, the first of its actors, in the
/// pipeline's order, whose config lets it answer. Picked when the pipeline is built; a config
/// whose actors cannot read records or images back is refused at start.
pub struct Readers {
    pub records: Named<dyn RecordReader>,
    pub images: Named<dyn ImageReader>,
    /// None when no actor keeps an index over all records (S3 alone): history pages are
    /// empty and duplicates are not flagged.
    pub history: Option<Named<dyn HistoryReader>>,
}

/// One image and its labels, as read from a request.
pub struct Submission {
    pub image: Bytes,
    pub labels: Labels,
}

/// A submission whose image is stripped (when the pipeline strips) and probed: what a queued
/// job keeps until a worker completes it.
pub struct Prepared {
    pub image: Bytes,
    pub facts: ImageFacts,
    pub metadata: Option<MetadataReport>,
    pub labels: Labels,
    /// When the submission arrived; the record's `received_at`.
    pub received_at: DateTime<Utc>,
}

/// What admission decided: the id already holds this very submission, or the submission
/// passed the cheap checks and is ready to be completed (now, or by a queued job).
pub enum Admission {
    Replayed(Accepted),
    Ready(Prepared),
}

/// Now, to the millisecond: a submission's arrival as every store (BSON dates among them)
/// keeps it.
pub fn received_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The steps of completing a submission, as a job reports them (its `stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Fetching the photo of an `image_url`.
    Fetch,
    /// Decoding the image and running the extractors on it, in one pass on the decode pool.
    Decode,
    Validate,
    Store,
}

impl Prepared {
    /// The facts validators check, with what the extractors found (none yet before them).
    fn facts_with<'a>(&'a self, extracted: Option<&'a Extracted>) -> Facts<'a> {
        Facts {
            labels: &self.labels,
            image: &self.facts,
            barcodes: extracted.map_or(&[], |e| &e.barcodes),
            text: extracted.and_then(|e| e.text.as_ref()),
        }
    }
}

#[derive(Debug)]
pub struct Accepted {
    pub record: Record,
    /// False when the id already held this very submission (an idempotent retry).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Unstrippable(#[from] StripError),
    #[error("this pipeline does not accept {0} images")]
    FormatNotAllowed(ImageFormat),
    #[error("the submission was rejected by {} validator(s)", validators_in(.0))]
    Rejected(Vec<Violation>),
    #[error("the id {0} already holds a different submission")]
    Conflict(Uuid),
    #[error("a submission with id {0} is being stored right now")]
    InProgress(Uuid),
    #[error("the image has {bytes} bytes; actor `{actor}` stores at most {limit}")]
    TooLargeFor {
        actor: String,
        bytes: u64,
        limit: u64,
    },
    #[error("actor `{actor}` could not store the record: {cause}")]
    ActorFailed {
        actor: String,
        #[source]
        cause: ActorError,
    },
    #[error("the notifications' outbox: {0}")]
    Outbox(#[source] OutboxError),
    #[error("actor `{actor}` could not read: {cause}")]
    ReadFailed {
        actor: String,
        #[source]
        cause: ActorError,
    },
}

/// How many validators the findings come from (one validator may report several).
fn validators_in(violations: &[Violation]) -> usize {
    let names: std::collections::BTreeSet<&str> =
        violations.iter().map(|v| v.validator.as_str()).collect();
    names.len()
}

impl Pipeline {
    /// Whether the caller may submit to this pipeline.
    pub fn authorize_submit(&self, caller: &Caller) -> Result<(), Denied> {
        self.access.authorize_submit(caller, &self.name)
    }

    /// Whether the caller may read this pipeline's records, images and history.
    pub fn authorize_read(&self, caller: &Caller) -> Result<(), Denied> {
        self.access.authorize_read(caller, &self.name)
    }

    fn read_failed<T: ?Sized>(actor: &Named<T>) -> impl FnOnce(ActorError) -> SubmitError {
        move |cause| SubmitError::ReadFailed {
            actor: actor.name.clone(),
            cause,
        }
    }

    pub async fn record(&self, id: Uuid) -> Result<Option<Record>, SubmitError> {
        let reader = &self.readers.records;
        reader.record(id).await.map_err(Self::read_failed(reader))
    }

    /// The bytes of a record's image, in the format the record names.
    pub async fn image(&self, record: &Record) -> Result<Option<Vec<u8>>, SubmitError> {
        let reader = &self.readers.images;
        let read = reader.image(record.id, record.image.format).await;
        read.map_err(Self::read_failed(reader))
    }

    /// A page of history; empty when no actor of the pipeline keeps one.
    pub async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, SubmitError> {
        let Some(reader) = &self.readers.history else {
            return Ok(HistoryPage::default());
        };
        reader
            .history(query)
            .await
            .map_err(Self::read_failed(reader))
    }

    /// The earliest record of this pipeline with the same photo, when history is kept.
    async fn duplicate_of(&self, sha256: &str) -> Result<Option<Uuid>, SubmitError> {
        let Some(reader) = &self.readers.history else {
            return Ok(None);
        };
        let found = reader.find_image(sha256, &self.name).await;
        found.map_err(Self::read_failed(reader))
    }

    /// The largest image the validators let through, capped by the decoder's own limit.
    pub fn max_pixels(&self) -> u64 {
        self.validators
            .iter()
            .filter_map(|v| v.component.max_pixels())
            .fold(DECODE_PIXEL_LIMIT, u64::min)
    }

    /// The JSON Schema of the labels, when a validator has one.
    pub fn label_schema(&self) -> Option<&Value> {
        self.validators
            .iter()
            .find_map(|v| v.component.label_schema())
    }

    /// The image's header facts, when it is an image in a format this pipeline accepts.
    fn probe_accepted(&self, image: &[u8]) -> Result<ImageFacts, SubmitError> {
        let facts = probe(image)?;
        let accepted = self
            .validators
            .iter()
            .all(|v| v.component.accepts_format(facts.format));
        match accepted {
            true => Ok(facts),
            false => Err(SubmitError::FormatNotAllowed(facts.format)),
        }
    }

    fn violations(&self, stages: &[Stage], facts: &Facts<'_>) -> Vec<Violation> {
        self.validators
            .iter()
            .filter(|v| stages.contains(&v.component.stage()))
            .flat_map(|v| {
                v.component
                    .check(facts)
                    .into_iter()
                    .map(|finding| Violation {
                        validator: v.name.clone(),
                        finding,
                    })
            })
            .collect()
    }

    /// Decodes the image and runs this pipeline's extractors on the shared pool.
    async fn analyze(&self, image: Bytes, facts: &ImageFacts) -> Result<Extracted, ImageError> {
        extract::analyze(
            &self.decode_pool,
            image,
            facts.clone(),
            self.max_pixels(),
            self.extractors.clone(),
        )
        .await
    }

    /// Reads the barcodes (and other facts) of an image without storing anything, within the
    /// same format and pixel limits as a submission.
    pub async fn scan(&self, image: Bytes) -> Result<(ImageFacts, Extracted), SubmitError> {
        let facts = self.probe_accepted(&image)?;
        let extracted = self.analyze(image, &facts).await?;
        Ok((facts, extracted))
    }

    /// A submission's way, one step at a time: prepare, cheap checks, analyze, checks on the
    /// extracted facts, the record, then every actor.
    pub async fn submit(
        &self,
        submission: Submission,
        id: Option<Uuid>,
    ) -> Result<Accepted, SubmitError> {
        match self.admit(submission, id).await? {
            Admission::Replayed(accepted) => Ok(accepted),
            Admission::Ready(prepared) => {
                self.complete(prepared, id, |_| std::future::ready(()))
                    .await
            }
        }
    }

    /// What is checked before a submission is answered even when it is queued: the image is
    /// prepared, a retry under a stored id is answered with its record, and the validators
    /// that need only labels and the image header run.
    pub async fn admit(
        &self,
        submission: Submission,
        id: Option<Uuid>,
    ) -> Result<Admission, SubmitError> {
        let prepared = self.prepare(submission)?;
        if let Some(id) = id
            && let Some(existing) = self.record(id).await?
        {
            let replayed = self.replay(existing, &prepared.facts, &prepared.labels)?;
            return Ok(Admission::Replayed(replayed));
        }
        self.check(
            &[Stage::Labels, Stage::Header],
            &prepared.facts_with(None),
            id,
        )
        .await?;
        Ok(Admission::Ready(prepared))
    }

    /// The rest of an admitted submission's way: analyze, the checks on extracted facts, the
    /// record, every actor; `step` hears each step as it starts.
    pub async fn complete<Heard: Future<Output = ()>>(
        &self,
        prepared: Prepared,
        id: Option<Uuid>,
        step: impl Fn(Step) -> Heard,
    ) -> Result<Accepted, SubmitError> {
        step(Step::Decode).await;
        let extracted = self.extract(&prepared).await?;
        step(Step::Validate).await;
        self.check(
            &[Stage::Extracted],
            &prepared.facts_with(Some(&extracted)),
            id,
        )
        .await?;
        let image = prepared.image.clone();
        let record = self.record_of(prepared, extracted, id).await?;
        step(Step::Store).await;
        self.store_everywhere(record, &image).await
    }

    /// Strips the metadata (first, so that hashes, duplicates and retries all see the bytes
    /// stored) and reads the image header.
    fn prepare(&self, submission: Submission) -> Result<Prepared, SubmitError> {
        let received_at = received_now();
        let started = Instant::now();
        let (image, metadata) = match self.strip_metadata {
            true => {
                let (stripped, report) = strip(&submission.image, &self.keep_metadata)?;
                (stripped, Some(report))
            }
            false => (submission.image, None),
        };
        let facts = self.probe_accepted(&image)?;
        self.metrics
            .stage(metrics::Stage::Prepare, None, started.elapsed());
        Ok(Prepared {
            image,
            facts,
            metadata,
            labels: submission.labels,
            received_at,
        })
    }

    /// Runs the validators of these stages; any finding rejects the submission (and tells
    /// the notifiers that hear of rejections).
    async fn check(
        &self,
        stages: &[Stage],
        facts: &Facts<'_>,
        id: Option<Uuid>,
    ) -> Result<(), SubmitError> {
        let started = Instant::now();
        let rejected = self.violations(stages, facts);
        self.metrics
            .stage(metrics::Stage::Validate, None, started.elapsed());
        if rejected.is_empty() {
            return Ok(());
        }
        if let Some(notifications) = &self.notifications {
            notifications
                .rejected(&self.notify, &self.name, id, facts.labels, &rejected)
                .await;
        }
        Err(SubmitError::Rejected(rejected))
    }

    /// Decodes the image once and runs the extractors on it.
    async fn extract(&self, prepared: &Prepared) -> Result<Extracted, SubmitError> {
        let extracted = self
            .analyze(prepared.image.clone(), &prepared.facts)
            .await?;
        self.metrics
            .stage(metrics::Stage::Decode, None, extracted.decode_time);
        self.metrics
            .stage(metrics::Stage::Extract, None, extracted.extract_time);
        Ok(extracted)
    }

    /// The record to store, with the place each actor will keep it.
    async fn record_of(
        &self,
        prepared: Prepared,
        extracted: Extracted,
        id: Option<Uuid>,
    ) -> Result<Record, SubmitError> {
        let duplicate_of = self.duplicate_of(&prepared.facts.sha256).await?;
        let mut record = Record {
            id: id.unwrap_or_else(Uuid::now_v7),
            pipeline: self.name.clone(),
            received_at: prepared.received_at,
            labels: prepared.labels,
            image: prepared.facts,
            barcodes: extracted.barcodes,
            text: extracted.text,
            metadata: prepared.metadata,
            duplicate_of,
            stored: Vec::new(),
        };
        record.stored = self
            .actors
            .iter()
            .map(|a| Stored {
                actor: a.name.clone(),
                location: a.component.location(&record),
            })
            .collect();
        Ok(record)
    }

    /// Same id again: the same content in this pipeline is answered with the stored record;
    /// anything else, a record of another pipeline above all (whose callers may be others), is
    /// a conflict that shows nothing of it.
    fn replay(
        &self,
        existing: Record,
        facts: &ImageFacts,
        labels: &Labels,
    ) -> Result<Accepted, SubmitError> {
        if existing.pipeline == self.name && existing.same_content(&facts.sha256, labels) {
            Ok(Accepted {
                record: existing,
                created: false,
            })
        } else {
            Err(SubmitError::Conflict(existing.id))
        }
    }

    /// Stores the record with every actor, its notifications held in the outbox meanwhile:
    /// released once the record is stored, dropped when it is not.
    async fn store_everywhere(
        &self,
        record: Record,
        image: &[u8],
    ) -> Result<Accepted, SubmitError> {
        let Some(notifications) = self
            .notifications
            .as_ref()
            .filter(|_| !self.notify.is_empty())
        else {
            return self.store_with_actors(record, image).await;
        };
        let held = notifications
            .hold(&self.notify, &record)
            .await
            .map_err(SubmitError::Outbox)?;
        let stored = self.store_with_actors(record, image).await;
        match &stored {
            Ok(accepted) if accepted.created => notifications.release(held).await,
            _ => notifications.discard(held).await,
        }
        stored
    }

    async fn store_with_actors(
        &self,
        record: Record,
        image: &[u8],
    ) -> Result<Accepted, SubmitError> {
        for (done, actor) in self.actors.iter().enumerate() {
            let started = Instant::now();
            let stored = actor.component.store(&record, image).await;
            self.metrics
                .stage(metrics::Stage::Store, Some(&actor.name), started.elapsed());
            let Err(error) = stored else {
                continue;
            };
            self.undo(&self.actors[..done], &record).await;
            if let ActorError::TooLarge { bytes, limit } = error {
                return Err(SubmitError::TooLargeFor {
                    actor: actor.name.clone(),
                    bytes,
                    limit,
                });
            }
            if let ActorError::AlreadyExists(id) = error {
                // Another request stored this id first: answer as a retry would be answered.
                let existing = self.record(id).await?.ok_or(SubmitError::InProgress(id))?;
                return self.replay(existing, &record.image, &record.labels);
            }
            tracing::warn!(id = %record.id, actor = %actor.name, %error, "store failed; nothing kept");
            return Err(SubmitError::ActorFailed {
                actor: actor.name.clone(),
                cause: error,
            });
        }
        tracing::info!(id = %record.id, pipeline = %self.name, barcodes = record.barcodes.len(), "stored");
        Ok(Accepted {
            record,
            created: true,
        })
    }

    /// Removes what earlier actors stored. A removal that fails is logged with id and actor
    /// so an operator can clean up; it never goes unnoticed.
    async fn undo(&self, stored: &[Named<dyn Actor>], record: &Record) {
        for actor in stored.iter().rev() {
            if let Err(error) = actor.component.remove(record.id).await {
                self.metrics.orphan();
                self.orphans.add(&Orphan {
                    at: Utc::now(),
                    id: record.id,
                    actor: actor.name.clone(),
                    location: actor.component.location(record),
                    error: error.to_string(),
                });
            }
        }
    }
}
