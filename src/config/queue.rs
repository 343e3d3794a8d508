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
