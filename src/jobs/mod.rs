//! Asynchronous submissions: a job per submission answered 202, kept in a durable queue until
//! a worker has stored or rejected it. The queue's state is the truth about a job; the step a
//! running job is at lives in memory only (after a crash the job simply runs again).

mod local;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use librarian_model::Labels;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::config::queue::{LocalQueueConfig, QueueConfig};
use crate::pipeline::{Prepared, Step};

pub use local::LocalQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Stored,
    Rejected,
    Failed,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Stored | Self::Rejected | Self::Failed)
    }

    /// The state as the API and the metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Stored => "stored",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// A job as `GET /api/v1/jobs/{id}` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub pipeline: String,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Step>,
    /// Runs started so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The problem+json of a rejected or failed job (or of the last failed run of a queued one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Value>,
}

/// How far a job has got, ordered: runs started, then the place in a run (queued before the
/// first run, running, each step, queued again for the next run, final). Every change of a
/// job moves it further.
pub type Progress = (u32, u8);

impl Job {
    pub fn progress(&self) -> Progress {
        let place = match (self.state, self.stage) {
            (JobState::Queued, _) if self.attempts == 0 => 0,
            (JobState::Running, None) => 1,
            (JobState::Running, Some(Step::Decode)) => 2,
            (JobState::Running, Some(Step::Validate)) => 3,
            (JobState::Running, Some(Step::Store)) => 4,
            (JobState::Queued, _) => 5,
            (JobState::Stored | JobState::Rejected | JobState::Failed, _) => 6,
        };
        (self.attempts, place)
    }
}

/// A submission to queue under an id.
pub struct NewJob {
    pub id: Uuid,
    pub pipeline: String,
    pub prepared: Prepared,
}

/// What queueing a submission did.
pub enum Enqueued {
    /// Queued now.
    Queued(Job),
    /// The id already holds a job with the same image and labels: that job.
    Same(Job),
    /// The id already holds a job with other content.
    Conflict(Uuid),
}

/// A job a worker took, with its submission.
pub struct Claimed {
    pub job: Job,
    pub prepared: Prepared,
}

/// What a worker took from the queue.
pub enum Claim {
    Ready(Box<Claimed>),
    /// A job whose submission could not be read back: it can only fail.
    Unreadable(Job),
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A one-off command (`scan`) opens no queue.
    #[error("this process has no queue of asynchronous submissions")]
    Closed,
    #[error("the queue holds as many jobs (or bytes of images) as it may; retry shortly")]
    Full,
    #[error("queue file {file}: {source}")]
    Open {
        file: std::path::PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("the queue could not be read or written: {0}")]
    Store(#[source] Box<redb::Error>),
    #[error("a queued job could not be read: {0}")]
    Corrupt(#[source] serde_json::Error),
    #[error("part of job {0} is missing from the queue")]
    Missing(Uuid),
    #[error("the queue's worker thread failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl<E: Into<redb::Error>> From<E> for QueueError {
    fn from(e: E) -> Self {
        Self::Store(Box::new(e.into()))
    }
}

/// What is kept of a job in the queue: the job and what identifies its content.
#[derive(Serialize, Deserialize)]
struct Entry {
    job: Job,
    sha256: String,
    labels: Labels,
}

/// The queue, the steps of running jobs, and the news of every change.
pub struct Queue {
    store: Arc<LocalQueue>,
    config: LocalQueueConfig,
    steps: Mutex<HashMap<Uuid, Step>>,
    /// Woken when a job is queued.
    pub queued: Notify,
    changes: broadcast::Sender<Job>,
}

impl Queue {
    /// Opens the queue a config names; jobs that were running when the process stopped are
    /// queued again.
    pub fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        let QueueConfig::Local(local) = config;
        let store = LocalQueue::open(&local.file)?;
        let requeued = store.requeue_running()?;
        if requeued > 0 {
            tracing::warn!(
                jobs = requeued,
                "jobs that were running at the last stop are queued again"
            );
        }
        Ok(Self {
            store: Arc::new(store),
            config: local.clone(),
            steps: Mutex::default(),
            queued: Notify::new(),
            changes: broadcast::channel(256).0,
        })
    }

    pub fn config(&self) -> &LocalQueueConfig {
        &self.config
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&LocalQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(QueueError::Task)?
    }

    /// The job with its current step.
    fn with_step(&self, mut job: Job) -> Job {
        if job.state == JobState::Running {
            job.stage = self
                .steps
                .lock()
                .expect("not poisoned")
                .get(&job.id)
                .copied();
        }
        job
    }

    fn changed(&self, job: &Job) {
        let _ = self.changes.send(job.clone());
    }

    /// Queues a submission durably; only then may it be acknowledged.
    pub async fn enqueue(&self, new: NewJob) -> Result<Enqueued, QueueError> {
        let limits = (self.config.max_queued.get(), self.config.max_queued_bytes);
        let enqueued = self.blocking(move |q| q.enqueue(new, limits)).await?;
        if let Enqueued::Queued(job) = &enqueued {
            self.changed(job);
            self.queued.notify_one();
        }
        Ok(enqueued)
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        let job = self.blocking(move |q| q.job(id)).await?;
        Ok(job.map(|j| self.with_step(j)))
    }

    /// Every change of any job from now on.
    pub fn changes(&self) -> broadcast::Receiver<Job> {
        self.changes.subscribe()
    }

    /// The next job that is due, now running.
    pub async fn claim(&self) -> Result<Option<Claim>, QueueError> {
        let claim = self.blocking(|q| q.claim(Utc::now())).await?;
        match &claim {
            Some(Claim::Ready(claimed)) => self.changed(&claimed.job),
            Some(Claim::Unreadable(job)) => self.changed(job),
            None => {}
        }
        Ok(claim)
    }

    /// When the next job waiting for a retry is due.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, QueueError> {
        self.blocking(|q| q.next_due()).await
    }

    /// A running job reached a step.
    pub fn step(&self, job: &Job, step: Step) {
        self.steps
            .lock()
            .expect("not poisoned")
            .insert(job.id, step);
        self.changed(&Job {
            stage: Some(step),
            updated_at: Utc::now(),
            ..job.clone()
        });
    }

    /// A job's final state: its submission is dropped from the queue.
    pub async fn finish(
        &self,
        id: Uuid,
        state: JobState,
        problem: Option<Value>,
    ) -> Result<Job, QueueError> {
        self.steps.lock().expect("not poisoned").remove(&id);
        let job = self
            .blocking(move |q| q.finish(id, state, problem, Utc::now()))
            .await?;
        self.changed(&job);
        Ok(job)
    }

    /// A run failed for a reason that may pass: the job waits until `at` and runs again.
    pub async fn retry(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        problem: Value,
    ) -> Result<Job, QueueError> {
        self.steps.lock().expect("not poisoned").remove(&id);
        let job = self.blocking(move |q| q.retry(id, at, problem)).await?;
        self.changed(&job);
        Ok(job)
    }

    /// Jobs waiting (queued) and running.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        self.blocking(|q| q.depth()).await
    }

    /// Drops finished jobs older than `keep_finished`.
    pub async fn forget_finished(&self) -> Result<usize, QueueError> {
        let keep =
            chrono::Duration::from_std(self.config.keep_finished).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now() - keep;
        self.blocking(move |q| q.forget_finished(before)).await
    }
}
