//! `[queue]`: where asynchronous submissions wait for a worker.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The queue of asynchronous submissions (`Prefer: respond-async`, or a pipeline's
/// `mode = "async"`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum QueueConfig {
    /// A durable queue in one file on local disk (an embedded redb database), worked by the
    /// server's own workers: a job acknowledged with 202 survives a crash or a restart and
    /// runs after it.
    Local(LocalQueueConfig),
    /// RabbitMQ: a durable queue of persistent messages that any number of `librarian worker`
    /// processes (and servers with workers) consume, with the state of every job in MongoDB
    /// so that each API replica answers `GET /api/v1/jobs/{id}` the same.
    Amqp(AmqpQueueConfig),
}

impl QueueConfig {
    /// How jobs are run, whichever queue holds them.
    pub fn policy(&self) -> JobPolicy {
        match self {
            Self::Local(c) => JobPolicy {
                workers: c.workers,
                max_attempts: c.max_attempts,
                retry_delay: c.retry_delay,
                keep_finished: c.keep_finished,
            },
            Self::Amqp(c) => JobPolicy {
                workers: c.workers,
                max_attempts: c.max_attempts,
                retry_delay: c.retry_delay,
                keep_finished: c.keep_finished,
            },
        }
    }
}

/// How jobs are run, from either queue's config.
#[derive(Clone, Copy, Debug)]
pub struct JobPolicy {
    pub workers: Option<NonZeroUsize>,
    pub max_attempts: NonZeroU32,
    pub retry_delay: Duration,
    pub keep_finished: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self::Local(LocalQueueConfig::default())
    }
}

/// A queue on local disk.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalQueueConfig {
    /// The queue's database file; it is created when missing.
    #[serde(default = "default_file")]
    #[schemars(extend("format" = "path"))]
    pub file: PathBuf,
    /// Jobs worked at once; unset = one per CPU core. They share the decode pool with
    /// synchronous submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<NonZeroUsize>,
    /// Jobs waiting at most; more are answered 503 with Retry-After, so a flood of uploads
    /// cannot fill the disk.
    #[serde(default = "default_max_queued")]
    pub max_queued: NonZeroUsize,
    /// Bytes of images waiting at most (1 GiB); more are answered 503 with Retry-After.
    #[serde(default = "default_max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// Runs of a job whose storage failed (a 5xx) before it is `failed`; a rejection (a 4xx)
    /// is final at once.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: NonZeroU32,
    /// The wait before the second run; each further run waits twice as long, with jitter.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub retry_delay: Duration,
    /// How long the state of a finished job is kept for `GET /api/v1/jobs/{id}`.
    #[serde(default = "default_keep_finished", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub keep_finished: Duration,
}

fn default_file() -> PathBuf {
    "queue.redb".into()
}
fn default_max_queued() -> NonZeroUsize {
    NonZeroUsize::new(1000).expect("not zero")
}
fn default_max_queued_bytes() -> u64 {
    1 << 30
}
fn default_max_attempts() -> NonZeroU32 {
    NonZeroU32::new(5).expect("not zero")
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_keep_finished() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Default for LocalQueueConfig {
    fn default() -> Self {
        Self {
            file: default_file(),
            workers: None,
            max_queued: default_max_queued(),
            max_queued_bytes: default_max_queued_bytes(),
            max_attempts: default_max_attempts(),
            retry_delay: default_retry_delay(),
            keep_finished: default_keep_finished(),
        }
    }
}

/// A queue on RabbitMQ, with the jobs' state in MongoDB.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmqpQueueConfig {
    /// The broker, e.g. `amqp://user:password@rabbit:5672/%2f` (`amqps://` for TLS).
    pub url: String,
    /// The durable queue of jobs. `<queue>.retry` holds jobs waiting for their next run,
    /// `<queue>.dead` the messages of jobs that ran `max_attempts` times, and the fanout
    /// exchange `<queue>.events` carries each job's changes to every server.
    #[serde(default = "default_queue_name")]
    pub queue: String,
    /// Where every replica reads and writes the state of jobs.
    pub state: JobStateConfig,
    /// Jobs worked at once by this process (also the prefetch: messages it holds unacknowledged);
    /// unset = one per CPU core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<NonZeroUsize>,
    /// Messages waiting at most, as the broker counts them when a job is queued; more are
    /// answered 503 with Retry-After.
    #[serde(default = "default_max_queued")]
    pub max_queued: NonZeroUsize,
    /// Runs of a job before it is `failed` and its message goes to `<queue>.dead`; a worker
    /// that dies during a run counts as a run. A rejection (a 4xx) is final at once.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: NonZeroU32,
    /// The wait before the second run; each further run waits twice as long, with jitter.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub retry_delay: Duration,
    /// How long the state of a finished job is kept for `GET /api/v1/jobs/{id}`.
    #[serde(default = "default_keep_finished", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub keep_finished: Duration,
    /// Longest time to reach the broker or MongoDB, and to have a message confirmed.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub connect_timeout: Duration,
}

/// The MongoDB collection that holds the state of jobs.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStateConfig {
    /// Connection string, e.g. `mongodb://user:password@db1,db2/?replicaSet=rs0`.
    pub uri: String,
    #[serde(default = "default_state_database")]
    pub database: String,
    #[serde(default = "default_state_collection")]
    pub collection: String,
}

fn default_queue_name() -> String {
    "librarian.jobs".into()
}
fn default_state_database() -> String {
    "librarian".into()
}
fn default_state_collection() -> String {
    "jobs".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How a pipeline answers a submission sent without `Prefer: respond-async`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubmitMode {
    /// The record, once stored (201).
    #[default]
    Sync,
    /// 202 Accepted with the job, once queued.
    Async,
}

/// How a job fetches a photo sent as `image_url`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// Fetch from loopback, private (RFC 1918, unique local), link-local and other addresses
    /// that are not public. Off: a URL whose host is or resolves to one is refused, so that a
    /// contributor cannot make the server read its own network (cloud metadata, admin ports).
    #[serde(default)]
    pub allow_private: bool,
    /// The largest photo fetched, in bytes (20 MiB).
    #[serde(default = "default_fetch_max_bytes")]
    pub max_bytes: u64,
    /// Longest time a fetch may take, redirects and body included.
    #[serde(default = "default_fetch_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
    /// Redirects followed at most; each new host is checked as the first.
    #[serde(default = "default_fetch_redirects")]
    pub max_redirects: u32,
}

fn default_fetch_max_bytes() -> u64 {
    20 << 20
}
fn default_fetch_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_fetch_redirects() -> u32 {
    3
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: default_fetch_max_bytes(),
            timeout: default_fetch_timeout(),
            max_redirects: default_fetch_redirects(),
        }
    }
}
