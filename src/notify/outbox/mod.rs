//! The outbox: events waiting for their notifiers, one letter per event and notifier. A letter
//! is written before it can be sent and moves through states, each move taken by one process
//! only, so that API replicas and workers share one outbox:
//!
//! - *held*: the event of a record being stored, written before the first actor runs; released
//!   (pending) once every actor stored the record, removed when the store failed. One that a
//!   process left when it died mid-store is settled later: sent if its record exists, dropped
//!   if not.
//! - *pending*, due at a time: the earliest due is taken first.
//! - *sending*: an attempt under way; one claimed longer ago than an attempt can take is
//!   pending again (its process died).
//! - *dead*: given up after `max_attempts` or a final refusal; `librarian outbox list` shows
//!   these, `librarian outbox retry` sends them again.
//!
//! Where the letters live: files in a folder on local disk (`disk.rs`), or, with a RabbitMQ
//! queue, documents in the MongoDB database that holds the jobs' state (`shared.rs`), so that
//! replicas on several hosts share it.

mod disk;
#[cfg(feature = "amqp")]
mod shared;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::blocking::off_runtime;
use crate::config::notify::{EventKind, OutboxConfig};
use crate::config::queue::QueueConfig;
use disk::DiskOutbox;

/// One event for one notifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Letter {
    pub event_id: Uuid,
    pub kind: EventKind,
    pub pipeline: String,
    /// The record the event is about: what settles a held letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Uuid>,
    pub notifier: String,
    pub created_at: DateTime<Utc>,
    /// Attempts that failed so far.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The event as the notifier sends it.
    pub event: Value,
}

impl Letter {
    /// What names the letter in every state: its event and its notifier.
    fn key(&self) -> String {
        format!("{}.{}", self.event_id, self.notifier)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {}: {source}", .path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox file {} is not a letter: {source}", .path.display())]
    Corrupt {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the outbox in MongoDB: {0}")]
    Shared(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("an outbox task ended without an answer: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "with `[queue] kind = \"amqp\"` the outbox is kept in MongoDB, which this build cannot \
         reach: it needs the cargo feature `amqp`"
    )]
    NotBuiltIn,
}

/// The letters of one record being stored.
#[derive(Default)]
pub struct Held(Vec<Letter>);

impl Held {
    /// A letter that a process left held.
    pub fn left(letter: Letter) -> Self {
        Self(vec![letter])
    }
}

/// A letter taken for an attempt, and when.
pub struct Claimed {
    pub letter: Letter,
    claimed_ms: i64,
}

/// How many letters wait, and since when the oldest of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Depth {
    pub letters: usize,
    pub oldest: Option<DateTime<Utc>>,
}

/// The outbox a config names.
pub enum Outbox {
    Disk(Arc<DiskOutbox>),
    #[cfg(feature = "amqp")]
    Shared(shared::SharedOutbox),
}

/// One operation on either outbox: the disk's off the runtime, MongoDB's awaited.
macro_rules! on_either {
    ($outbox:expr, |$store:ident| $work:expr) => {
        match $outbox {
            Outbox::Disk(disk) => off_runtime(disk, move |$store| $work).await,
            #[cfg(feature = "amqp")]
            Outbox::Shared($store) => $work.await,
        }
    };
}

impl Outbox {
    /// Opens the outbox: in the jobs' MongoDB database when the queue is RabbitMQ (the
    /// collection `outbox.collection`), else in the folder `outbox.dir`, made when missing.
    pub async fn open(config: &OutboxConfig, queue: &QueueConfig) -> Result<Self, OutboxError> {
        match queue {
            QueueConfig::Local(_) => {
                let dir = config.dir.clone();
                let opened = tokio::task::spawn_blocking(move || DiskOutbox::open(&dir)).await?;
                Ok(Self::Disk(Arc::new(opened?)))
            }
            #[cfg(feature = "amqp")]
            QueueConfig::Amqp(amqp) => Ok(Self::Shared(
                shared::SharedOutbox::open(&amqp.state, &config.collection, amqp.connect_timeout)
                    .await?,
            )),
            #[cfg(not(feature = "amqp"))]
            QueueConfig::Amqp(_) => Err(OutboxError::NotBuiltIn),
        }
    }

    /// Where the letters are, for people.
    pub fn place(&self) -> String {
        match self {
            Self::Disk(disk) => disk.dir().display().to_string(),
            #[cfg(feature = "amqp")]
            Self::Shared(shared) => shared.place(),
        }
    }

    /// Writes the letters of a record about to be stored; none is sent before it is released.
    pub async fn hold(&self, letters: Vec<Letter>) -> Result<Held, OutboxError> {
        on_either!(self, |o| o.hold(letters))
    }

    /// The record is stored: its letters are due now.
    pub async fn release(&self, held: Held) -> Result<(), OutboxError> {
        on_either!(self, |o| o.release(held))
    }

    /// The record was not stored: its letters go.
    pub async fn discard(&self, held: Held) -> Result<(), OutboxError> {
        on_either!(self, |o| o.discard(held))
    }

    /// Letters due now, for events that need no store (a rejection).
    pub async fn post(&self, letters: Vec<Letter>) -> Result<(), OutboxError> {
        on_either!(self, |o| o.post(letters))
    }

    /// Held letters older than `age`: a process died while their records were stored.
    pub async fn stale_held(&self, age: Duration) -> Result<Vec<Letter>, OutboxError> {
        on_either!(self, |o| o.stale_held(age))
    }

    /// Takes up to `limit` letters that are due, the earliest due first. A letter another
    /// process took first is skipped; one that cannot be read is made a dead letter as it is.
    pub async fn take_due(
        &self,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, OutboxError> {
        on_either!(self, |o| o.take_due(limit, now))
    }

    /// When the earliest pending letter is due.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        on_either!(self, |o| o.next_due())
    }

    /// The attempt succeeded.
    pub async fn delivered(&self, claimed: Claimed) -> Result<(), OutboxError> {
        on_either!(self, |o| o.delivered(claimed))
    }

    /// The attempt failed: the letter (its attempts and error updated) is due again at `due`.
    pub async fn reschedule(
        &self,
        claimed: Claimed,
        due: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        on_either!(self, |o| o.reschedule(claimed, due))
    }

    /// The letter is given up: kept as a dead letter.
    pub async fn bury(&self, claimed: Claimed) -> Result<(), OutboxError> {
        on_either!(self, |o| o.bury(claimed))
    }

    /// Letters claimed longer than `age` ago are due again: the attempt's process died (an
    /// attempt is bounded well below `age`).
    pub async fn reclaim(&self, age: Duration, now: DateTime<Utc>) -> Result<usize, OutboxError> {
        on_either!(self, |o| o.reclaim(age, now))
    }

    /// Letters waiting (pending or under way), and the creation time of the oldest.
    pub async fn depth(&self) -> Result<Depth, OutboxError> {
        on_either!(self, |o| o.depth())
    }

    /// Every dead letter, the oldest first.
    pub async fn dead(&self) -> Result<Vec<Letter>, OutboxError> {
        on_either!(self, |o| o.dead())
    }

    /// Sends dead letters again (those of one event, or all): due now, attempts from zero.
    pub async fn revive(
        &self,
        event: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<usize, OutboxError> {
        on_either!(self, |o| o.revive(event, now))
    }
}
