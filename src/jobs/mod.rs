//! Asynchronous submissions: a job per submission answered 202, kept in a durable queue until
//! a worker has stored or rejected it. The queue's state is the truth about a job; the step a
//! running job is at lives in memory only (after a crash the job simply runs again).

#[cfg(feature = "amqp")]
mod amqp;
mod local;
#[cfg(feature = "amqp")]
mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use librarian_model::Labels;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::blocking::off_runtime;
use crate::config::queue::{JobPolicy, QueueConfig};
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
            (JobState::Running, Some(Step::Fetch)) => 2,
            (JobState::Running, Some(Step::Decode)) => 3,
            (JobState::Running, Some(Step::Validate)) => 4,
            (JobState::Running, Some(Step::Store)) => 5,
            (JobState::Queued, _) => 6,
            (JobState::Stored | JobState::Rejected | JobState::Failed, _) => 7,
        };
        (self.attempts, place)
    }
}

/// What a job completes: a submission that came with its image, or one whose image the job
/// fetches first (`image_url`).
pub enum Source {
    Prepared(Prepared),
    Url {
        url: String,
        labels: Labels,
        received_at: DateTime<Utc>,
    },
}

impl Source {
    fn labels(&self) -> &Labels {
        match self {
            Self::Prepared(p) => &p.labels,
            Self::Url { labels, .. } => labels,
        }
    }

    fn received_at(&self) -> DateTime<Utc> {
        match self {
            Self::Prepared(p) => p.received_at,
            Self::Url { received_at, .. } => *received_at,
        }
    }
}

/// A submission to queue under an id.
pub struct NewJob {
    pub id: Uuid,
    pub pipeline: String,
    pub source: Source,
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
    pub source: Source,
}

/// What a worker took from the queue.
pub enum Claim {
    Ready(Box<Claimed>),
    /// A job whose submission could not be read back: it can only fail.
    Unreadable(Job),
    /// A job whose runs were all cut short (`max_attempts` of them): it fails.
    Exhausted(Job),
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
    Task(#[from] tokio::task::JoinError),
    #[error("a queued job could not be read: {0}")]
    Unreadable(String),
    #[error("no answer in time: {0}")]
    Timeout(&'static str),
    #[error("the broker refused the message")]
    Refused,
    #[error("this build has no `{0}` queue: build with the cargo feature of that name")]
    NotBuiltIn(&'static str),
    #[cfg(feature = "amqp")]
    #[error("the broker: {0}")]
    Broker(#[from] lapin::Error),
    #[cfg(feature = "amqp")]
    #[error("the state of jobs in MongoDB: {0}")]
    State(#[source] Box<mongodb::error::Error>),
}

/// redb's errors, each kept as one.
macro_rules! store_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for QueueError {
            fn from(e: $error) -> Self {
                Self::Store(Box::new(e.into()))
            }
        }
    )*};
}
store_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What is kept of a job in the queue: the job and what identifies its content.
#[derive(Serialize, Deserialize)]
struct Entry {
    job: Job,
    /// The image's hash; empty for a job that fetches its image.
    sha256: String,
    /// The URL a job fetches its image from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    labels: Labels,
}

impl Entry {
    /// A job queued now for a submission.
    fn queued(id: Uuid, pipeline: String, source: &Source) -> Self {
        let (sha256, url) = match source {
            Source::Prepared(p) => (p.facts.sha256.clone(), None),
            Source::Url { url, .. } => (String::new(), Some(url.clone())),
        };
        Self {
            job: Job {
                id,
                pipeline,
                state: JobState::Queued,
                stage: None,
                attempts: 0,
                created_at: source.received_at(),
                updated_at: source.received_at(),
                problem: None,
            },
            sha256,
            url,
            labels: source.labels().clone(),
        }
    }

    /// Whether two jobs under one id carry the same submission (an idempotent retry).
    fn same_content(&self, other: &Entry) -> bool {
        self.job.pipeline == other.job.pipeline
            && self.sha256 == other.sha256
            && self.url == other.url
            && librarian_model::same_labels(&self.labels, &other.labels)
    }
}

/// A job a worker took, held until its outcome is recorded.
pub enum Ticket {
    Local,
    #[cfg(feature = "amqp")]
    Amqp(amqp::Ticket),
}

/// Where jobs wait.
enum Backend {
    Local(Arc<LocalQueue>),
    #[cfg(feature = "amqp")]
    Amqp(Arc<amqp::AmqpQueue>),
}

/// The queue, the steps of running jobs, and the news of every change.
pub struct Queue {
    backend: Backend,
    policy: JobPolicy,
    /// `queue.max_queued`, and `queue.max_queued_bytes` of a local queue.
    max_queued: (usize, u64),
    steps: Mutex<HashMap<Uuid, Step>>,
    /// Woken when a job is queued in this process.
    pub queued: Notify,
    changes: broadcast::Sender<Job>,
}

impl Queue {
    /// Opens the queue a config names. On local disk, jobs that were running when the process
    /// stopped are queued again; on RabbitMQ, the broker delivers their messages again.
    pub async fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        let changes = broadcast::channel(256).0;
        let (backend, max_queued) = match config {
            QueueConfig::Local(local) => {
                let store = LocalQueue::open(&local.file)?;
                let requeued = store.requeue_running()?;
                if requeued > 0 {
                    tracing::warn!(
                        jobs = requeued,
                        "jobs that were running at the last stop are queued again"
                    );
                }
                let limits = (local.max_queued.get(), local.max_queued_bytes);
                (Backend::Local(Arc::new(store)), limits)
            }
            #[cfg(feature = "amqp")]
            QueueConfig::Amqp(amqp) => {
                let queue = Arc::new(amqp::AmqpQueue::open(amqp).await?);
                tokio::spawn(queue.clone().listen(changes.clone()));
                (Backend::Amqp(queue), (amqp.max_queued.get(), u64::MAX))
            }
            #[cfg(not(feature = "amqp"))]
            QueueConfig::Amqp(_) => return Err(QueueError::NotBuiltIn("amqp")),
        };
        Ok(Self {
            backend,
            policy: config.policy(),
            max_queued,
            steps: Mutex::default(),
            queued: Notify::new(),
            changes,
        })
    }

    pub fn policy(&self) -> &JobPolicy {
        &self.policy
    }

    /// The job with its current step.
    fn with_step(&self, mut job: Job) -> Job {
        if job.state == JobState::Running
            && let Some(step) = self.steps.lock().expect("not poisoned").get(&job.id)
        {
            job.stage = Some(*step);
        }
        job
    }

    /// Tells the listeners of this process, or of every process sharing the broker.
    async fn changed(&self, job: &Job) {
        match &self.backend {
            Backend::Local(_) => {
                let _ = self.changes.send(job.clone());
            }
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.announce(job).await,
        }
    }

    /// Queues a submission durably; only then may it be acknowledged.
    pub async fn enqueue(&self, new: NewJob) -> Result<Enqueued, QueueError> {
        let enqueued = match &self.backend {
            Backend::Local(store) => {
                let limits = self.max_queued;
                off_runtime(store, move |q| q.enqueue(new, limits)).await?
            }
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.enqueue(new, self.max_queued.0).await?,
        };
        if let Enqueued::Queued(job) = &enqueued {
            self.changed(job).await;
            self.queued.notify_one();
        }
        Ok(enqueued)
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        let job = match &self.backend {
            Backend::Local(store) => off_runtime(store, move |q| q.job(id)).await?,
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.job(id).await?,
        };
        Ok(job.map(|j| self.with_step(j)))
    }

    /// Every change of any job from now on.
    pub fn changes(&self) -> broadcast::Receiver<Job> {
        self.changes.subscribe()
    }

    /// The next job that is due, now running; `prefetch` is how many this process works at
    /// once. `None` when there is none, after waiting at most a second.
    #[cfg_attr(not(feature = "amqp"), expect(unused_variables))]
    pub async fn claim(&self, prefetch: u16) -> Result<Option<(Claim, Ticket)>, QueueError> {
        let claim = match &self.backend {
            Backend::Local(store) => {
                let claim = off_runtime(store, |q| q.claim(Utc::now())).await?;
                match claim {
                    Some(claim) => Some((claim, Ticket::Local)),
                    None => {
                        self.idle(store).await;
                        None
                    }
                }
            }
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue
                .claim(prefetch)
                .await?
                .map(|(claim, ticket)| (claim, Ticket::Amqp(ticket))),
        };
        // Runs cut short (the process killed each time) count too: a photo that kills its
        // worker stops after max_attempts.
        let exhausted = |job: &Job| job.attempts > self.policy.max_attempts.get();
        let claim = claim.map(|(claim, ticket)| match claim {
            Claim::Ready(claimed) if exhausted(&claimed.job) => {
                (Claim::Exhausted(claimed.job), ticket)
            }
            other => (other, ticket),
        });
        match &claim {
            Some((Claim::Ready(claimed), _)) => self.changed(&claimed.job).await,
            Some((Claim::Unreadable(job) | Claim::Exhausted(job), _)) => self.changed(job).await,
            None => {}
        }
        Ok(claim)
    }

    /// Waits until a job is queued or the next retry is due, a second at most.
    async fn idle(&self, store: &Arc<LocalQueue>) {
        const IDLE_LOOK: std::time::Duration = std::time::Duration::from_secs(1);
        let wait = match off_runtime(store, |q| q.next_due()).await {
            Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or_default(),
            _ => IDLE_LOOK,
        };
        tokio::select! {
            _ = self.queued.notified() => {}
            _ = tokio::time::sleep(wait.min(IDLE_LOOK)) => {}
        }
    }

    /// A running job reached a step.
    pub async fn step(&self, job: &Job, step: Step) {
        self.steps
            .lock()
            .expect("not poisoned")
            .insert(job.id, step);
        #[cfg(feature = "amqp")]
        if let Backend::Amqp(queue) = &self.backend
            && let Err(error) = queue.step(job.id, step).await
        {
            tracing::warn!(job = %job.id, %error, "a job's step could not be recorded");
        }
        self.changed(&Job {
            stage: Some(step),
            updated_at: Utc::now(),
            ..job.clone()
        })
        .await;
    }

    /// A job's final state: its submission is let go.
    pub async fn finish(
        &self,
        ticket: Ticket,
        id: Uuid,
        state: JobState,
        problem: Option<Value>,
    ) -> Result<Job, QueueError> {
        self.steps.lock().expect("not poisoned").remove(&id);
        let job = match (&self.backend, ticket) {
            (Backend::Local(store), _) => {
                let now = Utc::now();
                off_runtime(store, move |q| q.finish(id, state, problem, now)).await?
            }
            #[cfg(feature = "amqp")]
            (Backend::Amqp(queue), Ticket::Amqp(ticket)) => {
                queue.finish(ticket, id, state, problem).await?
            }
            #[cfg(feature = "amqp")]
            (Backend::Amqp(_), Ticket::Local) => return Err(QueueError::Missing(id)),
        };
        self.changed(&job).await;
        Ok(job)
    }

    /// A run failed for a reason that may pass: the job runs again after `delay`.
    pub async fn retry(
        &self,
        ticket: Ticket,
        id: Uuid,
        delay: std::time::Duration,
        problem: Value,
    ) -> Result<Job, QueueError> {
        self.steps.lock().expect("not poisoned").remove(&id);
        let job = match (&self.backend, ticket) {
            (Backend::Local(store), _) => {
                let at =
                    Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                off_runtime(store, move |q| q.retry(id, at, problem)).await?
            }
            #[cfg(feature = "amqp")]
            (Backend::Amqp(queue), Ticket::Amqp(ticket)) => {
                queue.retry(ticket, id, delay, problem).await?
            }
            #[cfg(feature = "amqp")]
            (Backend::Amqp(_), Ticket::Local) => return Err(QueueError::Missing(id)),
        };
        self.changed(&job).await;
        Ok(job)
    }

    /// Jobs waiting (queued) and running.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        match &self.backend {
            Backend::Local(store) => off_runtime(store, |q| q.depth()).await,
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.depth().await,
        }
    }

    /// Drops finished jobs older than `keep_finished`.
    pub async fn forget_finished(&self) -> Result<usize, QueueError> {
        let keep =
            chrono::Duration::from_std(self.policy.keep_finished).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now() - keep;
        match &self.backend {
            Backend::Local(store) => off_runtime(store, move |q| q.forget_finished(before)).await,
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.forget_finished(before).await,
        }
    }
}
