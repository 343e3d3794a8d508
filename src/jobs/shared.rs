//! The state of jobs in MongoDB, shared by every API replica and worker of an `amqp` queue:
//! one document per job. Labels and problems are kept as JSON text, so that numbers stay
//! exactly as sent (BSON has no arbitrary-precision number).

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::Collection;
use mongodb::bson::{self, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Entry, Job, JobState, QueueError};
use crate::config::queue::JobStateConfig;
use crate::pipeline::Step;

/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// A job's document.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "_id")]
    id: String,
    pipeline: String,
    state: JobState,
    stage: Option<Step>,
    attempts: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `updated_at` in milliseconds, for the range query that forgets finished jobs.
    updated_ms: i64,
    problem: Option<String>,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    labels: String,
}

impl Stored {
    fn of(entry: &Entry) -> Self {
        let job = &entry.job;
        Self {
            id: job.id.to_string(),
            pipeline: job.pipeline.clone(),
            state: job.state,
            stage: job.stage,
            attempts: job.attempts.into(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            updated_ms: job.updated_at.timestamp_millis(),
            problem: job.problem.as_ref().map(Value::to_string),
            sha256: entry.sha256.clone(),
            url: entry.url.clone(),
            labels: serde_json::to_string(&entry.labels).expect("labels serialize"),
        }
    }

    fn entry(self) -> Result<Entry, QueueError> {
        let corrupt = |e: &dyn std::fmt::Display| QueueError::Unreadable(e.to_string());
        let job = Job {
            id: self.id.parse().map_err(|e| corrupt(&e))?,
            pipeline: self.pipeline,
            state: self.state,
            stage: self.stage,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt(&e))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            problem: self
                .problem
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(QueueError::Corrupt)?,
        };
        Ok(Entry {
            job,
            sha256: self.sha256,
            url: self.url,
            labels: serde_json::from_str(&self.labels).map_err(QueueError::Corrupt)?,
        })
    }
}

fn state_error(e: mongodb::error::Error) -> QueueError {
    QueueError::State(Box::new(e))
}

/// The `$set` of a change at `now`.
fn changed(now: DateTime<Utc>, fields: Document) -> Document {
    let mut set = doc! {
        "updated_at": bson::to_bson(&now).expect("a time serializes"),
        "updated_ms": now.timestamp_millis(),
    };
    set.extend(fields);
    doc! {"$set": set}
}

pub struct SharedJobs {
    jobs: Collection<Stored>,
}

impl SharedJobs {
    /// Connects and checks that MongoDB answers.
    pub async fn open(config: &JobStateConfig, timeout: Duration) -> Result<Self, QueueError> {
        let db = crate::mongo::connect(config, timeout)
            .await
            .map_err(state_error)?;
        Ok(Self {
            jobs: db.collection(&config.collection),
        })
    }

    /// Keeps a new job's entry, or gives the entry already kept under its id.
    pub async fn insert(&self, entry: &Entry) -> Result<Option<Entry>, QueueError> {
        match self.jobs.insert_one(Stored::of(entry)).await {
            Ok(_) => Ok(None),
            Err(e) if is_duplicate(&e) => match self.entry(entry.job.id).await? {
                Some(kept) => Ok(Some(kept)),
                None => Err(QueueError::Missing(entry.job.id)),
            },
            Err(e) => Err(state_error(e)),
        }
    }

    pub async fn entry(&self, id: Uuid) -> Result<Option<Entry>, QueueError> {
        let found = self
            .jobs
            .find_one(doc! {"_id": id.to_string()})
            .await
            .map_err(state_error)?;
        found.map(Stored::entry).transpose()
    }

    /// A run starts: the job is running, one attempt more. Only a queued job starts, or a
    /// running one whose message is `redelivered` (its worker died); `None` otherwise.
    pub async fn start(
        &self,
        id: Uuid,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, QueueError> {
        let mut startable = vec![JobState::Queued.name()];
        if redelivered {
            startable.push(JobState::Running.name());
        }
        let filter = doc! {"_id": id.to_string(), "state": {"$in": startable}};
        let mut update = changed(
            now,
            doc! {"state": JobState::Running.name(), "stage": bson::Bson::Null},
        );
        update.insert("$inc", doc! {"attempts": 1});
        self.change(filter, update).await
    }

    /// A running job reached a step.
    pub async fn step(&self, id: Uuid, step: Step, now: DateTime<Utc>) -> Result<(), QueueError> {
        let filter = doc! {"_id": id.to_string(), "state": JobState::Running.name()};
        let stage = bson::to_bson(&step).expect("a step serializes");
        let update = changed(now, doc! {"stage": stage});
        self.jobs
            .update_one(filter, update)
            .await
            .map_err(state_error)?;
        Ok(())
    }

    /// A job's run ended in `state` (final, or queued for a retry).
    pub async fn end(
        &self,
        id: Uuid,
        state: JobState,
        problem: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Job, QueueError> {
        let problem = problem.map(Value::to_string);
        let update = changed(
            now,
            doc! {"state": state.name(), "stage": bson::Bson::Null, "problem": problem},
        );
        self.change(doc! {"_id": id.to_string()}, update)
            .await?
            .ok_or(QueueError::Missing(id))
    }

    async fn change(&self, filter: Document, update: Document) -> Result<Option<Job>, QueueError> {
        let changed = self
            .jobs
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(state_error)?;
        Ok(changed.map(Stored::entry).transpose()?.map(|e| e.job))
    }

    /// Jobs waiting (queued) and running.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        let count = |state: JobState| self.jobs.count_documents(doc! {"state": state.name()});
        let queued = count(JobState::Queued).await.map_err(state_error)?;
        let running = count(JobState::Running).await.map_err(state_error)?;
        Ok((queued, running))
    }

    pub async fn forget_finished(&self, before: DateTime<Utc>) -> Result<usize, QueueError> {
        let finals = [JobState::Stored, JobState::Rejected, JobState::Failed].map(JobState::name);
        let filter = doc! {
            "state": {"$in": finals.to_vec()},
            "updated_ms": {"$lt": before.timestamp_millis()},
        };
        let deleted = self.jobs.delete_many(filter).await.map_err(state_error)?;
        Ok(usize::try_from(deleted.deleted_count).unwrap_or(usize::MAX))
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
}
