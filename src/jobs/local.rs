//! The queue on local disk: one redb file, every change one transaction, committed to disk
//! before the change is acknowledged.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use librarian_model::{ImageFacts, MetadataReport};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Claim, Claimed, Enqueued, Entry, Job, JobState, NewJob, QueueError, Source};
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

/// What a queued submission holds besides its job's entry (labels, arrival) and its image
/// (kept apart, as raw bytes).
#[derive(Serialize, Deserialize)]
struct Submission {
    facts: ImageFacts,
    metadata: Option<MetadataReport>,
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

/// The queued submission of a job, image and all (or the URL of its image).
fn submission_of(
    tx: &redb::WriteTransaction,
    id: u128,
    entry: &Entry,
) -> Result<Source, QueueError> {
    if let Some(url) = &entry.url {
        return Ok(Source::Url {
            url: url.clone(),
            labels: entry.labels.clone(),
            received_at: entry.job.created_at,
        });
    }
    let missing = || QueueError::Missing(Uuid::from_u128(id));
    let submissions = tx.open_table(SUBMISSIONS)?;
    let submission: Submission = parse(submissions.get(id)?.ok_or_else(missing)?.value())?;
    let images = tx.open_table(IMAGES)?;
    let image = Bytes::copy_from_slice(images.get(id)?.ok_or_else(missing)?.value());
    Ok(Source::Prepared(Prepared {
        image,
        facts: submission.facts,
        metadata: submission.metadata,
        labels: entry.labels.clone(),
        received_at: entry.job.created_at,
    }))
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
        let tx = self.db.begin_write()?;
        let entry = Entry::queued(new.id, new.pipeline, &new.source);
        let enqueued = {
            let mut jobs = tx.open_table(JOBS)?;
            if let Some(kept) = entry_of(&jobs, id)? {
                return Ok(match kept.same_content(&entry) {
                    true => Enqueued::Same(kept.job),
                    false => Enqueued::Conflict(new.id),
                });
            }
            let mut due = tx.open_table(DUE)?;
            let waiting = due.len()? + tx.open_table(RUNNING)?.len()?;
            let mut totals = tx.open_table(TOTALS)?;
            let bytes = totals.get(IMAGE_BYTES)?.map_or(0, |v| v.value());
            let image_bytes = match &new.source {
                Source::Prepared(prepared) => prepared.image.len() as u64,
                Source::Url { .. } => 0,
            };
            if waiting >= max_queued as u64 || bytes.saturating_add(image_bytes) > max_bytes {
                return Err(QueueError::Full);
            }
            totals.insert(IMAGE_BYTES, bytes + image_bytes)?;
            let job = entry.job.clone();
            jobs.insert(id, json(&entry).as_slice())?;
            if let Source::Prepared(prepared) = new.source {
                let submission = Submission {
                    facts: prepared.facts,
                    metadata: prepared.metadata,
                };
                tx.open_table(SUBMISSIONS)?
                    .insert(id, json(&submission).as_slice())?;
                tx.open_table(IMAGES)?.insert(id, &prepared.image[..])?;
            }
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

    /// Takes the first job due by `now`: it is running, one attempt more. A due id whose job
    /// cannot be read is dropped (logged), so that it cannot block the jobs behind it.
    pub fn claim(&self, now: DateTime<Utc>) -> Result<Option<Claim>, QueueError> {
        let tx = self.db.begin_write()?;
        let claim = {
            let mut due = tx.open_table(DUE)?;
            let first = due.first()?.map(|(k, _)| k.value());
            let Some((at, id)) = first.filter(|(at, _)| *at <= now.timestamp_millis()) else {
                return Ok(None);
            };
            due.remove((at, id))?;
            let mut jobs = tx.open_table(JOBS)?;
            match entry_of(&jobs, id) {
                Ok(Some(mut entry)) => {
                    entry.job.state = JobState::Running;
                    entry.job.attempts += 1;
                    entry.job.updated_at = now;
                    jobs.insert(id, json(&entry).as_slice())?;
                    tx.open_table(RUNNING)?.insert(id, ())?;
                    Some(match submission_of(&tx, id, &entry) {
                        Ok(source) => Claim::Ready(Box::new(Claimed {
                            job: entry.job,
                            source,
                        })),
                        Err(error) => {
                            tracing::error!(job = %entry.job.id, %error, "a queued submission could not be read back");
                            Claim::Unreadable(entry.job)
                        }
                    })
                }
                unreadable => {
                    let error = unreadable.err().map(|e| e.to_string());
                    tracing::error!(job = %Uuid::from_u128(id), ?error, "a due job could not be read; dropped");
                    None
                }
            }
        };
        tx.commit()?;
        Ok(claim)
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
            let mut entry = entry_of(&jobs, key)?.ok_or(QueueError::Missing(id))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use librarian_model::ImageFormat;

    fn new_job(n: u8) -> NewJob {
        let image = Bytes::from(vec![n; 8]);
        NewJob {
            id: Uuid::now_v7(),
            pipeline: "default".into(),
            source: Source::Prepared(Prepared {
                facts: ImageFacts {
                    format: ImageFormat::Png,
                    width: 1,
                    height: 1,
                    bytes: image.len() as u64,
                    sha256: format!("{n}"),
                },
                image,
                metadata: None,
                labels: Default::default(),
                received_at: Utc::now(),
            }),
        }
    }

    fn queued(queue: &LocalQueue, n: u8) -> Uuid {
        match queue.enqueue(new_job(n), (10, 1 << 20)).unwrap() {
            Enqueued::Queued(job) => job.id,
            _ => panic!("queued"),
        }
    }

    fn remove(queue: &LocalQueue, table: TableDefinition<u128, &[u8]>, id: Uuid) {
        let tx = queue.db.begin_write().unwrap();
        tx.open_table(table).unwrap().remove(id.as_u128()).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_job_whose_parts_are_gone_blocks_no_job_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let queue = LocalQueue::open(&dir.path().join("queue.redb")).unwrap();
        let (no_image, no_job, fine) = (queued(&queue, 1), queued(&queue, 2), queued(&queue, 3));
        remove(&queue, IMAGES, no_image);
        remove(&queue, JOBS, no_job);
        let later = Utc::now() + chrono::Duration::seconds(1);
        match queue.claim(later).unwrap() {
            Some(Claim::Unreadable(job)) => assert_eq!(job.id, no_image),
            _ => panic!("the job without its image can only fail"),
        }
        assert!(
            queue.claim(later).unwrap().is_none(),
            "the id without a job is dropped"
        );
        match queue.claim(later).unwrap() {
            Some(Claim::Ready(claimed)) => assert_eq!(claimed.job.id, fine),
            _ => panic!("the job behind them runs"),
        }
        assert_eq!(queue.depth().unwrap(), (0, 2));
    }

    #[test]
    fn finishing_a_job_frees_its_bytes_for_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let queue = LocalQueue::open(&dir.path().join("queue.redb")).unwrap();
        let limits = (10, 16);
        let first = queue.enqueue(new_job(1), limits).unwrap();
        let Enqueued::Queued(first) = first else {
            panic!("queued")
        };
        assert!(matches!(
            queue.enqueue(new_job(2), limits),
            Ok(Enqueued::Queued(_))
        ));
        assert!(matches!(
            queue.enqueue(new_job(3), limits),
            Err(QueueError::Full)
        ));
        queue
            .finish(first.id, JobState::Stored, None, Utc::now())
            .unwrap();
        assert!(matches!(
            queue.enqueue(new_job(3), limits),
            Ok(Enqueued::Queued(_))
        ));
    }

    #[tokio::test]
    async fn a_job_cut_short_max_attempts_times_fails_instead_of_running_again() {
        use crate::config::queue::{LocalQueueConfig, QueueConfig};
        let dir = tempfile::tempdir().unwrap();
        let config = QueueConfig::Local(LocalQueueConfig {
            file: dir.path().join("queue.redb"),
            max_attempts: std::num::NonZeroU32::new(2).unwrap(),
            ..Default::default()
        });
        let queue = super::super::Queue::open(&config).await.unwrap();
        let Enqueued::Queued(job) = queue.enqueue(new_job(1)).await.unwrap() else {
            panic!("queued")
        };
        drop(queue);
        // Each open is a restart after a kill: the running job is queued again.
        for attempt in 1..=3 {
            let queue = super::super::Queue::open(&config).await.unwrap();
            let claim = queue.claim(1).await.unwrap().map(|(claim, _)| claim);
            match (attempt, claim) {
                (1 | 2, Some(Claim::Ready(claimed))) => assert_eq!(claimed.job.id, job.id),
                (3, Some(Claim::Exhausted(exhausted))) => assert_eq!(exhausted.attempts, 3),
                _ => panic!("run {attempt} is not what it should be"),
            }
        }
    }
}
