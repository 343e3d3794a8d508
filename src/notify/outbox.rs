//! The outbox: events waiting for their notifiers, one JSON file per event and notifier in a
//! folder on local disk. A file is written whole (synced, then renamed into place) before it
//! counts, and moves from one state's folder to the next by rename, which is atomic: processes
//! sharing the folder never both take a file, and a crash leaves each letter in one state.
//!
//! - `held/<event>.<notifier>.json`: the event of a record being stored, written before the
//!   first actor runs; released to `pending/` once every actor stored the record, removed when
//!   the store failed. One that a process left when it died mid-store is settled later: sent
//!   if its record exists, dropped if not.
//! - `pending/<due>.<created>.<event>.<notifier>.json`: due at `due` (milliseconds since the
//!   epoch, zero-padded, so names sort by due time).
//! - `sending/<claimed>.<created>.<event>.<notifier>.json`: an attempt under way; one older
//!   than an attempt can take goes back to `pending/` (its process died).
//! - `dead/<event>.<notifier>.json`: given up after `max_attempts` or a final refusal;
//!   `librarian outbox list` shows these, `librarian outbox retry` sends them again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use librarian_actors::{remove_if_present, write_atomically};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::config::notify::EventKind;

const HELD: &str = "held";
const PENDING: &str = "pending";
const SENDING: &str = "sending";
const DEAD: &str = "dead";

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

    /// Its name in `pending/` (and, with the claim's time first, in `sending/`).
    fn name_at(&self, millis: i64) -> String {
        format!(
            "{millis:013}.{:013}.{}.json",
            self.created_at.timestamp_millis(),
            self.key()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox file {} is not a letter: {source}", .path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read(path: &Path) -> Result<Letter, OutboxError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| OutboxError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// The leading number of a state file's name (its due or claim time), and the rest.
fn split_time(name: &str) -> Option<(i64, &str)> {
    let (millis, rest) = name.split_once('.')?;
    Some((millis.parse().ok()?, rest))
}

/// A letter held while its record is stored.
pub struct HeldLetter {
    path: PathBuf,
    pending_name: String,
}

/// The letters of one record being stored.
#[derive(Default)]
pub struct Held(Vec<HeldLetter>);

/// A letter taken for an attempt.
pub struct Claimed {
    path: PathBuf,
    pub letter: Letter,
}

/// How many letters wait, and since when the oldest of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Depth {
    pub letters: usize,
    pub oldest: Option<DateTime<Utc>>,
}

pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Opens the outbox in `dir`, making its folders when missing.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        for state in [HELD, PENDING, SENDING, DEAD] {
            let folder = dir.join(state);
            std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn write(&self, state: &str, name: &str, letter: &Letter) -> Result<PathBuf, OutboxError> {
        let folder = self.dir.join(state);
        let path = folder.join(name);
        let bytes = serde_json::to_vec(letter).expect("a letter serializes");
        write_atomically(&folder, &path, &bytes).map_err(io(&path))?;
        Ok(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), OutboxError> {
        std::fs::rename(from, to).map_err(io(from))
    }

    fn names(&self, state: &str) -> Result<Vec<String>, OutboxError> {
        let folder = self.dir.join(state);
        let entries = std::fs::read_dir(&folder).map_err(io(&folder))?;
        let mut names = Vec::new();
        for entry in entries {
            let name = entry.map_err(io(&folder))?.file_name();
            // Temporary files of writes under way start with a dot.
            if let Some(name) = name.to_str().filter(|n| n.ends_with(".json")) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Writes the letters of a record about to be stored; none is sent before it is released.
    pub fn hold(&self, letters: &[Letter]) -> Result<Held, OutboxError> {
        let mut held = Held::default();
        for letter in letters {
            match self.write(HELD, &format!("{}.json", letter.key()), letter) {
                Ok(path) => held.0.push(HeldLetter {
                    path,
                    pending_name: letter.name_at(letter.created_at.timestamp_millis()),
                }),
                Err(error) => {
                    self.discard(held);
                    return Err(error);
                }
            }
        }
        Ok(held)
    }

    /// The record is stored: its letters are due now.
    pub fn release(&self, held: Held) -> Result<(), OutboxError> {
        let pending = self.dir.join(PENDING);
        for letter in held.0 {
            self.rename(&letter.path, &pending.join(&letter.pending_name))?;
        }
        Ok(())
    }

    /// The record was not stored: its letters go.
    pub fn discard(&self, held: Held) {
        for letter in held.0 {
            if let Err(error) = remove_if_present(&letter.path) {
                tracing::error!(path = %letter.path.display(), %error, "cannot remove a held letter; it is settled later");
            }
        }
    }

    /// Letters due now, for events that need no store (a rejection).
    pub fn post(&self, letters: &[Letter]) -> Result<(), OutboxError> {
        for letter in letters {
            self.write(
                PENDING,
                &letter.name_at(letter.created_at.timestamp_millis()),
                letter,
            )?;
        }
        Ok(())
    }

    /// Held letters older than `age`: a process died while their records were stored.
    pub fn stale_held(&self, age: Duration) -> Result<Vec<(Held, Letter)>, OutboxError> {
        let folder = self.dir.join(HELD);
        let mut stale = Vec::new();
        for name in self.names(HELD)? {
            let path = folder.join(&name);
            let modified = std::fs::metadata(&path).and_then(|m| m.modified());
            let old = modified.is_ok_and(|m| {
                SystemTime::now()
                    .duration_since(m)
                    .is_ok_and(|since| since > age)
            });
            if !old {
                continue;
            }
            let letter = read(&path)?;
            let pending_name = letter.name_at(letter.created_at.timestamp_millis());
            stale.push((Held(vec![HeldLetter { path, pending_name }]), letter));
        }
        Ok(stale)
    }

    /// Takes up to `limit` letters that are due, the earliest due first. A letter another
    /// process took first is skipped; one that cannot be read is moved to `dead/` as it is.
    pub fn take_due(&self, limit: usize, now: DateTime<Utc>) -> Result<Vec<Claimed>, OutboxError> {
        let now_ms = now.timestamp_millis();
        let (pending, sending) = (self.dir.join(PENDING), self.dir.join(SENDING));
        let mut taken = Vec::new();
        for name in self.names(PENDING)? {
            if taken.len() == limit {
                break;
            }
            let Some((due, rest)) = split_time(&name) else {
                continue;
            };
            if due > now_ms {
                break;
            }
            let claimed = sending.join(format!("{now_ms:013}.{rest}"));
            match std::fs::rename(pending.join(&name), &claimed) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&pending)(e)),
            }
            match read(&claimed) {
                Ok(letter) => taken.push(Claimed {
                    path: claimed,
                    letter,
                }),
                Err(error) => {
                    tracing::error!(%error, "an unreadable letter is moved to the dead letters");
                    self.rename(&claimed, &self.dir.join(DEAD).join(rest))?;
                }
            }
        }
        Ok(taken)
    }

    /// When the earliest pending letter is due.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        let names = self.names(PENDING)?;
        let first = names.iter().find_map(|name| split_time(name));
        Ok(first.and_then(|(due, _)| DateTime::from_timestamp_millis(due)))
    }

    /// The attempt succeeded.
    pub fn delivered(&self, claimed: Claimed) -> Result<(), OutboxError> {
        remove_if_present(&claimed.path).map_err(io(&claimed.path))
    }

    /// The attempt failed: the letter (its attempts and error updated) is due again at `due`.
    pub fn reschedule(&self, claimed: Claimed, due: DateTime<Utc>) -> Result<(), OutboxError> {
        let name = claimed.letter.name_at(due.timestamp_millis());
        self.write(PENDING, &name, &claimed.letter)?;
        self.delivered(claimed)
    }

    /// The letter is given up: kept as a dead letter.
    pub fn bury(&self, claimed: Claimed) -> Result<(), OutboxError> {
        let name = format!("{}.json", claimed.letter.key());
        self.write(DEAD, &name, &claimed.letter)?;
        self.delivered(claimed)
    }

    /// Letters claimed longer than `age` ago go back to `pending/`: the attempt's process
    /// died (an attempt is bounded well below `age`).
    pub fn reclaim(&self, age: Duration, now: DateTime<Utc>) -> Result<usize, OutboxError> {
        let before = now.timestamp_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let (pending, sending) = (self.dir.join(PENDING), self.dir.join(SENDING));
        let mut count = 0;
        for name in self.names(SENDING)? {
            let Some((claimed_at, rest)) = split_time(&name) else {
                continue;
            };
            // `rest` starts with the creation time: due again at once.
            let Some((created, _)) = split_time(rest) else {
                continue;
            };
            if claimed_at < before {
                let back = pending.join(format!("{created:013}.{rest}"));
                match std::fs::rename(sending.join(&name), back) {
                    Ok(()) => count += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&sending)(e)),
                }
            }
        }
        Ok(count)
    }

    /// Letters waiting (pending or under way), and the creation time of the oldest.
    pub fn depth(&self) -> Result<Depth, OutboxError> {
        let mut depth = Depth::default();
        for (state, skip) in [(PENDING, 0), (SENDING, 1)] {
            for name in self.names(state)? {
                let created = name
                    .split('.')
                    .nth(1 + skip)
                    .and_then(|t| t.parse().ok())
                    .and_then(DateTime::from_timestamp_millis);
                depth.letters += 1;
                depth.oldest = match (depth.oldest, created) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(depth)
    }

    /// Every dead letter.
    pub fn dead(&self) -> Result<Vec<Letter>, OutboxError> {
        let folder = self.dir.join(DEAD);
        let names = self.names(DEAD)?;
        names.iter().map(|name| read(&folder.join(name))).collect()
    }

    /// Sends dead letters again (those of one event, or all): due now, attempts from zero.
    pub fn revive(&self, event: Option<Uuid>, now: DateTime<Utc>) -> Result<usize, OutboxError> {
        let folder = self.dir.join(DEAD);
        let mut count = 0;
        for name in self.names(DEAD)? {
            let path = folder.join(&name);
            let mut letter = read(&path)?;
            if event.is_some_and(|id| id != letter.event_id) {
                continue;
            }
            letter.attempts = 0;
            self.write(PENDING, &letter.name_at(now.timestamp_millis()), &letter)?;
            remove_if_present(&path).map_err(io(&path))?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(notifier: &str) -> Letter {
        Letter {
            event_id: Uuid::now_v7(),
            kind: EventKind::RecordStored,
            pipeline: "default".into(),
            record: Some(Uuid::now_v7()),
            notifier: notifier.into(),
            created_at: Utc::now(),
            attempts: 0,
            last_error: None,
            event: serde_json::json!({"type": "record.stored"}),
        }
    }

    fn outbox() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        (dir, outbox)
    }

    #[test]
    fn a_held_letter_is_sent_only_once_released() {
        let (_dir, outbox) = outbox();
        let sent = letter("hook");
        let held = outbox.hold(std::slice::from_ref(&sent)).unwrap();
        assert!(outbox.take_due(10, Utc::now()).unwrap().is_empty());
        assert_eq!(outbox.depth().unwrap().letters, 0);
        outbox.release(held).unwrap();
        let taken = outbox.take_due(10, Utc::now()).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].letter, sent);
        assert_eq!(outbox.depth().unwrap().letters, 1, "under way still counts");
        outbox.delivered(taken.into_iter().next().unwrap()).unwrap();
        assert_eq!(outbox.depth().unwrap(), Depth::default());
    }

    #[test]
    fn a_discarded_letter_is_never_sent() {
        let (_dir, outbox) = outbox();
        let held = outbox.hold(&[letter("hook"), letter("mail")]).unwrap();
        outbox.discard(held);
        assert!(outbox.stale_held(Duration::ZERO).unwrap().is_empty());
        assert!(outbox.take_due(10, Utc::now()).unwrap().is_empty());
    }

    #[test]
    fn a_rescheduled_letter_waits_until_due_and_a_claim_is_taken_once() {
        let (_dir, outbox) = outbox();
        outbox.post(&[letter("hook")]).unwrap();
        let mut taken = outbox.take_due(10, Utc::now()).unwrap();
        assert!(
            outbox.take_due(10, Utc::now()).unwrap().is_empty(),
            "claimed once"
        );
        let mut claimed = taken.remove(0);
        claimed.letter.attempts = 1;
        let due = Utc::now() + chrono::Duration::seconds(60);
        outbox.reschedule(claimed, due).unwrap();
        assert!(outbox.take_due(10, Utc::now()).unwrap().is_empty());
        let next = outbox.next_due().unwrap().unwrap();
        assert_eq!(next.timestamp_millis(), due.timestamp_millis());
        let later = outbox.take_due(10, due).unwrap();
        assert_eq!(later[0].letter.attempts, 1);
    }

    #[test]
    fn an_abandoned_claim_is_due_again() {
        let (_dir, outbox) = outbox();
        outbox.post(&[letter("hook")]).unwrap();
        let taken = outbox.take_due(10, Utc::now()).unwrap();
        assert_eq!(taken.len(), 1);
        let now = Utc::now();
        assert_eq!(outbox.reclaim(Duration::from_secs(60), now).unwrap(), 0);
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(outbox.reclaim(Duration::from_secs(60), later).unwrap(), 1);
        assert_eq!(outbox.take_due(10, later).unwrap().len(), 1);
    }

    #[test]
    fn a_dead_letter_is_listed_and_revived_with_its_attempts_reset() {
        let (_dir, outbox) = outbox();
        let (first, second) = (letter("hook"), letter("hook"));
        outbox.post(&[first.clone(), second.clone()]).unwrap();
        for mut claimed in outbox.take_due(10, Utc::now()).unwrap() {
            claimed.letter.attempts = 10;
            claimed.letter.last_error = Some("the receiver answered 500".into());
            outbox.bury(claimed).unwrap();
        }
        let dead = outbox.dead().unwrap();
        assert_eq!(dead.len(), 2);
        assert!(
            dead.iter()
                .all(|l| l.attempts == 10 && l.last_error.is_some())
        );
        assert_eq!(outbox.revive(Some(first.event_id), Utc::now()).unwrap(), 1);
        assert_eq!(outbox.dead().unwrap()[0].event_id, second.event_id);
        let again = outbox.take_due(10, Utc::now()).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].letter.event_id, first.event_id);
        assert_eq!(again[0].letter.attempts, 0);
    }

    #[test]
    fn the_depth_names_the_oldest_waiting_letter() {
        let (_dir, outbox) = outbox();
        let mut old = letter("hook");
        old.created_at = Utc::now() - chrono::Duration::seconds(300);
        outbox.post(&[letter("hook"), old.clone()]).unwrap();
        let depth = outbox.depth().unwrap();
        assert_eq!(depth.letters, 2);
        assert_eq!(
            depth.oldest.map(|t| t.timestamp_millis()),
            Some(old.created_at.timestamp_millis())
        );
    }
}
