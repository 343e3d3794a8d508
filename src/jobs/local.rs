//! The queue on local disk: one redb file, every change one transaction, committed to disk
//! before the change is acknowledged.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use librarian_model::{ImageFacts, MetadataReport, same_labels};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Claimed, Enqueued, Entry, Job, JobState, NewJob, QueueError};
use crate::pipeline::Prepared;

/// Every job, by id: its state and what identifies its content.
const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");
/// The submission of each unfinished job, but its image.
const SUBMISSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("submissions");
/// The image of each unfinished job.
const IMAGES: TableDefinition<u128, &[u8]> = TableDefinition::new("images");
/// Queued jobs by the time they are due (milliseconds), then id.
const DUE: TableDefinition<(i64, u128), ()> = TableDefinition::new("due");
/// Running jobs.
const RUNNING: TableDefinition<u128, ()> = TableDefinition::new("running");
/// Running totals: the bytes of the images waiting (`image_bytes`).
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("totals");
const IMAGE_BYTES: &str = "image_bytes";
/// Finished jobs by the time they finished, to forget them later.
const FINISHED: TableDefinition<(i64, u128), ()> = TableDefinition::new("finished");

/// The database's page cache. redb's default, 1 GiB, would hold every queued image in memory
/// (the load bench's server reached 1.3 GiB); the images are written once and read once.
const CACHE_BYTES: usize = 16 << 20;

/// A queued submission without its image (kept apart, as raw bytes).
#[derive(Serialize, Deserialize)]
struct Submission {
    facts: ImageFacts,
    metadata: Option<MetadataReport>,
    labels: librarian_model::Labels,
    received_at: DateTime<Utc>,
}

pub struct LocalQueue {
    db: Database,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a job serializes")
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, QueueError> {
    serde_json::from_slice(bytes).map_err(QueueError::Corrupt)
}

fn entry_of(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Option<Entry>, QueueError> {
    table.get(id)?.map(|v| parse(v.value())).transpose()
}

impl LocalQueue {
    pub fn open(file: &Path) -> Result<Self, QueueError> {
        let open = |source| QueueError::Open {
            file: file.to_path_buf(),
            source,
        };
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(file)
            .map_err(open)?;
        let tx = db.begin_write()?;
        for table in [JOBS, SUBMISSIONS, IMAGES] {
            tx.open_table(table)?;
        }
        tx.open_table(DUE)?;
        tx.open_table(RUNNING)?;
        tx.open_table(FINISHED)?;
        tx.open_table(TOTALS)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Queues again the jobs that were running: at most one process works a local queue, so
    /// they were left by a process that stopped.
    pub fn requeue_running(&self) -> Result<usize, QueueError> {
        let tx = self.db.begin_write()?;
        let now = Utc::now();
        let mut count = 0;
        {
            let mut running = tx.open_table(RUNNING)?;
            let mut jobs = tx.open_table(JOBS)?;
            let mut due = tx.open_table(DUE)?;
            while let Some((id, ())) = running.pop_first()?.map(|(k, v)| (k.value(), v.value())) {
                if let Some(mut entry) = entry_of(&jobs, id)? {
                    entry.job.state = JobState::Queued;
                    entry.job.updated_at = now;
                    jobs.insert(id, json(&entry).as_slice())?;
                    due.insert((now.timestamp_millis(), id), ())?;
                    count += 1;
                }
            }
        }
        tx.commit()?;
        Ok(count)
    }

    /// Queues a job unless the queue holds `limits.0` jobs or the images would pass
    /// `limits.1` bytes.
    pub fn enqueue(&self, new: NewJob, limits: (usize, u64)) -> Result<Enqueued, QueueError> {
        let (max_queued, max_bytes) = limits;
        let id = new.id.as_u128();
        let prepared = new.prepared;
        let tx = self.db.begin_write()?;
        let enqueued = {
            let mut jobs = tx.open_table(JOBS)?;
            if let Some(entry) = entry_of(&jobs, id)? {
                let same = entry.job.pipeline == new.pipeline
                    && entry.sha256 == prepared.facts.sha256
                    && same_labels(&entry.labels, &prepared.labels);
                return Ok(match same {
                    true => Enqueued::Same(entry.job),
                    false => Enqueued::Conflict(new.id),
                });
            }
            let mut due = tx.open_table(DUE)?;
            let waiting = due.len()? + tx.open_table(RUNNING)?.len()?;
            let mut totals = tx.open_table(TOTALS)?;
            let bytes = totals.get(IMAGE_BYTES)?.map_or(0, |v| v.value());
            let image_bytes = prepared.image.len() as u64;
            if waiting >= max_queued as u64 || bytes.saturating_add(image_bytes) > max_bytes {
                return Err(QueueError::Full);
            }
            totals.insert(IMAGE_BYTES, bytes + image_bytes)?;
            let job = Job {
                id: new.id,
                pipeline: new.pipeline,
                state: JobState::Queued,
                stage: None,
                attempts: 0,
                created_at: prepared.received_at,
                updated_at: prepared.received_at,
                problem: None,
            };
            let entry = Entry {
                job: job.clone(),
                sha256: prepared.facts.sha256.clone(),
                labels: prepared.labels.clone(),
            };
            jobs.insert(id, json(&entry).as_slice())?;
            let submission = Submission {
                facts: prepared.facts,
                metadata: prepared.metadata,
                labels: prepared.labels,
                received_at: prepared.received_at,
            };
            tx.open_table(SUBMISSIONS)?
                .insert(id, json(&submission).as_slice())?;
            tx.open_table(IMAGES)?.insert(id, &prepared.image[..])?;
            due.insert((job.created_at.timestamp_millis(), id), ())?;
            Enqueued::Queued(job)
        };
        tx.commit()?;
        Ok(enqueued)
    }

    pub fn job(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        let tx = self.db.begin_read()?;
        let jobs = tx.open_table(JOBS)?;
        Ok(entry_of(&jobs, id.as_u128())?.map(|e| e.job))
    }

    /// Takes the first job due by `now`: it is running, one attempt more.
    pub fn claim(&self, now: DateTime<Utc>) -> Result<Option<Claimed>, QueueError> {
        let tx = self.db.begin_write()?;
        let claimed = {
            let mut due = tx.open_table(DUE)?;
            let first = due.first()?.map(|(k, _)| k.value());
            let Some((at, id)) = first.filter(|(at, _)| *at <= now.timestamp_millis()) else {
                return Ok(None);
            };
            due.remove((at, id))?;
            let mut jobs = tx.open_table(JOBS)?;
            let Some(mut entry) = entry_of(&jobs, id)? else {
                return Ok(None);
            };
            entry.job.state = JobState::Running;
            entry.job.attempts += 1;
            entry.job.updated_at = now;
            jobs.insert(id, json(&entry).as_slice())?;
            tx.open_table(RUNNING)?.insert(id, ())?;
            let submission: Submission = match tx.open_table(SUBMISSIONS)?.get(id)? {
                Some(v) => parse(v.value())?,
                None => return Ok(None),
            };
            let image = match tx.open_table(IMAGES)?.get(id)? {
                Some(v) => Bytes::copy_from_slice(v.value()),
                None => return Ok(None),
            };
            Claimed {
                job: entry.job,
                prepared: Prepared {
                    image,
                    facts: submission.facts,
                    metadata: submission.metadata,
                    labels: submission.labels,
                    received_at: submission.received_at,
                },
            }
        };
        tx.commit()?;
        Ok(Some(claimed))
    }

    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, QueueError> {
        let tx = self.db.begin_read()?;
        let due = tx.open_table(DUE)?;
        let first = due.first()?.map(|(k, _)| k.value().0);
        Ok(first.and_then(DateTime::from_timestamp_millis))
    }

    /// Changes a job that exists; its id must be in the table.
    fn update(
        &self,
        id: Uuid,
        change: impl FnOnce(&mut Job, &redb::WriteTransaction) -> Result<(), QueueError>,
    ) -> Result<Job, QueueError> {
        let key = id.as_u128();
        let tx = self.db.begin_write()?;
        let job = {
            let mut jobs = tx.open_table(JOBS)?;
            let mut entry = entry_of(&jobs, key)?.ok_or_else(|| {
                QueueError::Corrupt(serde::de::Error::custom(format!("job {id} is missing")))
            })?;
            change(&mut entry.job, &tx)?;
            jobs.insert(key, json(&entry).as_slice())?;
            tx.open_table(RUNNING)?.remove(key)?;
            entry.job
        };
        tx.commit()?;
        Ok(job)
    }

    pub fn finish(
        &self,
        id: Uuid,
        state: JobState,
        problem: Option<Value>,
        now: DateTime<Utc>,
    ) -> Result<Job, QueueError> {
        self.update(id, |job, tx| {
            job.state = state;
            job.stage = None;
            job.problem = problem;
            job.updated_at = now;
            let key = id.as_u128();
            tx.open_table(SUBMISSIONS)?.remove(key)?;
            let freed = tx
                .open_table(IMAGES)?
                .remove(key)?
                .map_or(0, |v| v.value().len());
            let mut totals = tx.open_table(TOTALS)?;
            let bytes = totals.get(IMAGE_BYTES)?.map_or(0, |v| v.value());
            totals.insert(IMAGE_BYTES, bytes.saturating_sub(freed as u64))?;
            tx.open_table(FINISHED)?
                .insert((now.timestamp_millis(), key), ())?;
            Ok(())
        })
    }

    pub fn retry(&self, id: Uuid, at: DateTime<Utc>, problem: Value) -> Result<Job, QueueError> {
        self.update(id, |job, tx| {
            job.state = JobState::Queued;
            job.stage = None;
            job.problem = Some(problem);
            job.updated_at = Utc::now();
            tx.open_table(DUE)?
                .insert((at.timestamp_millis(), id.as_u128()), ())?;
            Ok(())
        })
    }

    pub fn depth(&self) -> Result<(u64, u64), QueueError> {
        let tx = self.db.begin_read()?;
        Ok((tx.open_table(DUE)?.len()?, tx.open_table(RUNNING)?.len()?))
    }

    pub fn forget_finished(&self, before: DateTime<Utc>) -> Result<usize, QueueError> {
        let tx = self.db.begin_write()?;
        let mut forgotten = 0;
        {
            let mut finished = tx.open_table(FINISHED)?;
            let mut jobs = tx.open_table(JOBS)?;
            let old: Vec<(i64, u128)> = finished
                .range(..(before.timestamp_millis(), 0))?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for key in old {
                finished.remove(key)?;
                jobs.remove(key.1)?;
                forgotten += 1;
            }
        }
        tx.commit()?;
        Ok(forgotten)
    }
}
