//! The outbox in MongoDB, beside the jobs' state of a RabbitMQ queue: one document per letter,
//! shared by API replicas and workers on any number of hosts. Every move from one state to
//! the next is one atomic update whose filter names the state it leaves (and a claim its
//! time), so that two processes never both take a letter, and an attempt whose letter was
//! taken back meanwhile changes nothing. The letter is kept as JSON text, so that numbers in
//! the event stay exactly as sent (BSON has no arbitrary-precision number).

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Claimed, Depth, Held, Letter, OutboxError};
use crate::config::queue::JobStateConfig;

const HELD: &str = "held";
const PENDING: &str = "pending";
const SENDING: &str = "sending";
const DEAD: &str = "dead";

/// A letter's document.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// `<event>.<notifier>`.
    #[serde(rename = "_id")]
    id: String,
    event_id: String,
    state: String,
    /// When it is due (pending), in milliseconds since the epoch.
    due_ms: i64,
    /// When its attempt began (sending).
    claimed_ms: Option<i64>,
    created_ms: i64,
    /// When it was written, for the held letters a process left.
    written_ms: i64,
    letter: String,
}

impl Stored {
    fn of(letter: &Letter, state: &str, now: DateTime<Utc>) -> Self {
        let created_ms = letter.created_at.timestamp_millis();
        Self {
            id: letter.key(),
            event_id: letter.event_id.to_string(),
            state: state.to_owned(),
            due_ms: created_ms,
            claimed_ms: None,
            created_ms,
            written_ms: now.timestamp_millis(),
            letter: text(letter),
        }
    }

    fn letter(&self) -> Result<Letter, OutboxError> {
        serde_json::from_str(&self.letter).map_err(|e| OutboxError::Shared(Box::new(e)))
    }
}

fn text(letter: &Letter) -> String {
    serde_json::to_string(letter).expect("a letter serializes")
}

fn shared(e: mongodb::error::Error) -> OutboxError {
    OutboxError::Shared(Box::new(e))
}

fn ids(held: &Held) -> Vec<String> {
    held.0.iter().map(Letter::key).collect()
}

/// The filter that finds a claim still held by its attempt.
fn claim(claimed: &Claimed) -> Document {
    doc! {"_id": claimed.letter.key(), "state": SENDING, "claimed_ms": claimed.claimed_ms}
}

pub struct SharedOutbox {
    letters: Collection<Stored>,
}

impl SharedOutbox {
    /// Connects, checks that MongoDB answers, and makes the index the delivery's queries use.
    pub async fn open(
        state: &JobStateConfig,
        collection: &str,
        timeout: Duration,
    ) -> Result<Self, OutboxError> {
        let db = crate::mongo::connect(state, timeout)
            .await
            .map_err(shared)?;
        let letters = db.collection::<Stored>(collection);
        let by_due = IndexModel::builder()
            .keys(doc! {"state": 1, "due_ms": 1})
            .build();
        letters.create_index(by_due).await.map_err(shared)?;
        Ok(Self { letters })
    }

    pub fn place(&self) -> String {
        format!(
            "the MongoDB collection {}.{}",
            self.letters.namespace().db,
            self.letters.name()
        )
    }

    async fn insert(&self, letters: &[Letter], state: &str) -> Result<(), OutboxError> {
        let now = Utc::now();
        let documents = letters.iter().map(|l| Stored::of(l, state, now));
        self.letters.insert_many(documents).await.map_err(shared)?;
        Ok(())
    }

    pub async fn hold(&self, letters: Vec<Letter>) -> Result<Held, OutboxError> {
        let held = Held(letters);
        if let Err(error) = self.insert(&held.0, HELD).await {
            // Some may have been written before the failure.
            self.discard(held).await.ok();
            return Err(error);
        }
        Ok(held)
    }

    pub async fn release(&self, held: Held) -> Result<(), OutboxError> {
        let filter = doc! {"_id": {"$in": ids(&held)}, "state": HELD};
        let now = Utc::now().timestamp_millis();
        let update = doc! {"$set": {"state": PENDING, "due_ms": now}};
        self.letters
            .update_many(filter, update)
            .await
            .map_err(shared)?;
        Ok(())
    }

    pub async fn discard(&self, held: Held) -> Result<(), OutboxError> {
        let filter = doc! {"_id": {"$in": ids(&held)}, "state": HELD};
        self.letters.delete_many(filter).await.map_err(shared)?;
        Ok(())
    }

    pub async fn post(&self, letters: Vec<Letter>) -> Result<(), OutboxError> {
        self.insert(&letters, PENDING).await
    }

    /// The letters of the documents `filter` finds, `sort`ed; one that is not a letter is
    /// logged and left.
    async fn find(&self, filter: Document, sort: Document) -> Result<Vec<Letter>, OutboxError> {
        let mut cursor = self.letters.find(filter).sort(sort).await.map_err(shared)?;
        let mut found = Vec::new();
        while cursor.advance().await.map_err(shared)? {
            let stored = cursor.deserialize_current().map_err(shared)?;
            match stored.letter() {
                Ok(letter) => found.push(letter),
                Err(error) => tracing::error!(%error, id = stored.id, "a letter cannot be read"),
            }
        }
        Ok(found)
    }

    pub async fn stale_held(&self, age: Duration) -> Result<Vec<Letter>, OutboxError> {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let before = Utc::now().timestamp_millis().saturating_sub(age);
        let filter = doc! {"state": HELD, "written_ms": {"$lt": before}};
        self.find(filter, doc! {"written_ms": 1}).await
    }

    pub async fn take_due(
        &self,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, OutboxError> {
        let now_ms = now.timestamp_millis();
        let mut taken = Vec::new();
        while taken.len() < limit {
            let claimed = self
                .letters
                .find_one_and_update(
                    doc! {"state": PENDING, "due_ms": {"$lte": now_ms}},
                    doc! {"$set": {"state": SENDING, "claimed_ms": now_ms}},
                )
                .sort(doc! {"due_ms": 1})
                .return_document(ReturnDocument::After)
                .await
                .map_err(shared)?;
            let Some(stored) = claimed else {
                break;
            };
            match stored.letter() {
                Ok(letter) => taken.push(Claimed {
                    letter,
                    claimed_ms: now_ms,
                }),
                Err(error) => {
                    tracing::error!(%error, id = stored.id, "an unreadable letter is made a dead letter");
                    let update = doc! {"$set": {"state": DEAD, "claimed_ms": Bson::Null}};
                    self.letters
                        .update_one(doc! {"_id": &stored.id}, update)
                        .await
                        .map_err(shared)?;
                }
            }
        }
        Ok(taken)
    }

    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        let first = self
            .letters
            .find_one(doc! {"state": PENDING})
            .sort(doc! {"due_ms": 1})
            .await
            .map_err(shared)?;
        Ok(first.and_then(|s| DateTime::from_timestamp_millis(s.due_ms)))
    }

    pub async fn delivered(&self, claimed: Claimed) -> Result<(), OutboxError> {
        self.letters
            .delete_one(claim(&claimed))
            .await
            .map_err(shared)?;
        Ok(())
    }

    /// Ends an attempt: the letter, as it is now, in `state`.
    async fn settle(&self, claimed: Claimed, state: &str, due: i64) -> Result<(), OutboxError> {
        let update = doc! {"$set": {
            "state": state,
            "due_ms": due,
            "claimed_ms": Bson::Null,
            "letter": text(&claimed.letter),
        }};
        self.letters
            .update_one(claim(&claimed), update)
            .await
            .map_err(shared)?;
        Ok(())
    }

    pub async fn reschedule(
        &self,
        claimed: Claimed,
        due: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        self.settle(claimed, PENDING, due.timestamp_millis()).await
    }

    pub async fn bury(&self, claimed: Claimed) -> Result<(), OutboxError> {
        let due = claimed.letter.created_at.timestamp_millis();
        self.settle(claimed, DEAD, due).await
    }

    pub async fn reclaim(&self, age: Duration, now: DateTime<Utc>) -> Result<usize, OutboxError> {
        let now_ms = now.timestamp_millis();
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let filter = doc! {"state": SENDING, "claimed_ms": {"$lt": now_ms.saturating_sub(age)}};
        let update = doc! {"$set": {"state": PENDING, "due_ms": now_ms, "claimed_ms": Bson::Null}};
        let changed = self
            .letters
            .update_many(filter, update)
            .await
            .map_err(shared)?;
        Ok(usize::try_from(changed.modified_count).unwrap_or(usize::MAX))
    }

    pub async fn depth(&self) -> Result<Depth, OutboxError> {
        let waiting = doc! {"state": {"$in": [PENDING, SENDING]}};
        let letters = self
            .letters
            .count_documents(waiting.clone())
            .await
            .map_err(shared)?;
        let oldest = self
            .letters
            .find_one(waiting)
            .sort(doc! {"created_ms": 1})
            .await
            .map_err(shared)?;
        Ok(Depth {
            letters: usize::try_from(letters).unwrap_or(usize::MAX),
            oldest: oldest.and_then(|s| DateTime::from_timestamp_millis(s.created_ms)),
        })
    }

    pub async fn dead(&self) -> Result<Vec<Letter>, OutboxError> {
        self.find(doc! {"state": DEAD}, doc! {"created_ms": 1})
            .await
    }

    pub async fn revive(
        &self,
        event: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<usize, OutboxError> {
        let mut filter = doc! {"state": DEAD};
        if let Some(event) = event {
            filter.insert("event_id", event.to_string());
        }
        let mut count = 0;
        for mut letter in self.find(filter, doc! {"created_ms": 1}).await? {
            letter.attempts = 0;
            let update = doc! {"$set": {
                "state": PENDING,
                "due_ms": now.timestamp_millis(),
                "letter": text(&letter),
            }};
            let revived = self
                .letters
                .update_one(doc! {"_id": letter.key(), "state": DEAD}, update)
                .await
                .map_err(shared)?;
            count += usize::try_from(revived.modified_count).unwrap_or(usize::MAX);
        }
        Ok(count)
    }
}
