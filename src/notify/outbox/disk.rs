//! The outbox in a folder on local disk: one JSON file per letter. A file is written whole
//! (synced, then renamed into place) before it counts, and moves from one state's folder to the
//! next by rename, which is atomic: processes sharing the folder never both take a file, and a
//! crash leaves each letter in one state.
//!
//! - `held/<event>.<notifier>.json`
//! - `pending/<due>.<created>.<event>.<notifier>.json`: `due` in milliseconds since the epoch,
//!   zero-padded, so names sort by due time.
//! - `sending/<claimed>.<created>.<event>.<notifier>.json`
//! - `dead/<event>.<notifier>.json`

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use librarian_actors::{remove_if_present, write_atomically};
use uuid::Uuid;

use super::{Claimed, Depth, Held, Letter, OutboxError};

const HELD: &str = "held";
const PENDING: &str = "pending";
const SENDING: &str = "sending";
const DEAD: &str = "dead";

impl Letter {
    /// Its name in `pending/` (and, with the claim's time first, in `sending/`).
    fn name_at(&self, millis: i64) -> String {
        format!(
            "{millis:013}.{:013}.{}.json",
            self.created_at.timestamp_millis(),
            self.key()
        )
    }

    /// Its name in `held/` and `dead/`.
    fn plain_name(&self) -> String {
        format!("{}.json", self.key())
    }
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

pub struct DiskOutbox {
    dir: PathBuf,
}

impl DiskOutbox {
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hold(&self, letters: Vec<Letter>) -> Result<Held, OutboxError> {
        let mut held = Held::default();
        for letter in letters {
            if let Err(error) = self.write(HELD, &letter.plain_name(), &letter) {
                self.discard(held)?;
                return Err(error);
            }
            held.0.push(letter);
        }
        Ok(held)
    }

    pub fn release(&self, held: Held) -> Result<(), OutboxError> {
        let (from, to) = (self.dir.join(HELD), self.dir.join(PENDING));
        for letter in held.0 {
            let due = letter.created_at.timestamp_millis();
            self.rename(
                &from.join(letter.plain_name()),
                &to.join(letter.name_at(due)),
            )?;
        }
        Ok(())
    }

    /// A letter that cannot be removed is logged: it is settled later.
    pub fn discard(&self, held: Held) -> Result<(), OutboxError> {
        let folder = self.dir.join(HELD);
        for letter in held.0 {
            let path = folder.join(letter.plain_name());
            if let Err(error) = remove_if_present(&path) {
                tracing::error!(path = %path.display(), %error, "cannot remove a held letter; it is settled later");
            }
        }
        Ok(())
    }

    pub fn post(&self, letters: Vec<Letter>) -> Result<(), OutboxError> {
        for letter in &letters {
            self.write(
                PENDING,
                &letter.name_at(letter.created_at.timestamp_millis()),
                letter,
            )?;
        }
        Ok(())
    }

    pub fn stale_held(&self, age: Duration) -> Result<Vec<Letter>, OutboxError> {
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
            stale.push(read(&path)?);
        }
        Ok(stale)
    }

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
                    letter,
                    claimed_ms: now_ms,
                }),
                Err(error) => {
                    tracing::error!(%error, "an unreadable letter is moved to the dead letters");
                    self.rename(&claimed, &self.dir.join(DEAD).join(rest))?;
                }
            }
        }
        Ok(taken)
    }

    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        let names = self.names(PENDING)?;
        let first = names.iter().find_map(|name| split_time(name));
        Ok(first.and_then(|(due, _)| DateTime::from_timestamp_millis(due)))
    }

    pub fn delivered(&self, claimed: Claimed) -> Result<(), OutboxError> {
        let path = self
            .dir
            .join(SENDING)
            .join(claimed.letter.name_at(claimed.claimed_ms));
        remove_if_present(&path).map_err(io(&path))
    }

    pub fn reschedule(&self, claimed: Claimed, due: DateTime<Utc>) -> Result<(), OutboxError> {
        let name = claimed.letter.name_at(due.timestamp_millis());
        self.write(PENDING, &name, &claimed.letter)?;
        self.delivered(claimed)
    }

    pub fn bury(&self, claimed: Claimed) -> Result<(), OutboxError> {
        self.write(DEAD, &claimed.letter.plain_name(), &claimed.letter)?;
        self.delivered(claimed)
    }

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

    /// The dead letters with their files; a file that is not a letter is logged and left.
    fn dead_files(&self) -> Result<Vec<(PathBuf, Letter)>, OutboxError> {
        let folder = self.dir.join(DEAD);
        let mut dead = Vec::new();
        for name in self.names(DEAD)? {
            let path = folder.join(name);
            match read(&path) {
                Ok(letter) => dead.push((path, letter)),
                Err(error) => tracing::error!(%error, "a dead letter cannot be read"),
            }
        }
        Ok(dead)
    }

    pub fn dead(&self) -> Result<Vec<Letter>, OutboxError> {
        let dead = self.dead_files()?;
        Ok(dead.into_iter().map(|(_, letter)| letter).collect())
    }

    pub fn revive(&self, event: Option<Uuid>, now: DateTime<Utc>) -> Result<usize, OutboxError> {
        let mut count = 0;
        for (path, mut letter) in self.dead_files()? {
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
    use crate::config::notify::EventKind;

    #[test]
    fn a_file_that_is_not_a_letter_is_moved_to_the_dead_letters_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = DiskOutbox::open(dir.path()).unwrap();
        let name = format!("{:013}.{:013}.x.hook.json", 1, 1);
        std::fs::write(dir.path().join(PENDING).join(&name), b"{not json").unwrap();
        let good = Letter {
            event_id: Uuid::now_v7(),
            kind: EventKind::RecordStored,
            pipeline: "default".into(),
            record: None,
            notifier: "hook".into(),
            created_at: Utc::now(),
            attempts: 0,
            last_error: None,
            event: serde_json::json!({}),
        };
        outbox.post(vec![good.clone()]).unwrap();
        let taken = outbox.take_due(10, Utc::now()).unwrap();
        assert_eq!(taken.len(), 1, "the good letter is still taken");
        assert_eq!(taken[0].letter, good);
        let moved = dir.path().join(DEAD).join(format!("{:013}.x.hook.json", 1));
        assert_eq!(std::fs::read(moved).unwrap(), b"{not json");
        assert!(outbox.dead().unwrap().is_empty(), "not listed as a letter");
        assert_eq!(outbox.revive(None, Utc::now()).unwrap(), 0);
    }
}
