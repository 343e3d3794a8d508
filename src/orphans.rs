//! Leftovers of an all-or-nothing store that could not be removed: appended to a JSON-lines
//! file so that `librarian orphans` can list them for an operator.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Orphan {
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: Uuid,
    pub actor: String,
    pub location: String,
    pub error: String,
}

pub struct Orphans {
    path: PathBuf,
    file: Mutex<()>,
}

impl Orphans {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: Mutex::new(()),
        }
    }

    /// Logs and appends one leftover; a failure to append is logged too.
    pub fn add(&self, orphan: &Orphan) {
        tracing::error!(id = %orphan.id, actor = %orphan.actor, location = %orphan.location, error = %orphan.error,
            "could not remove a partly stored record: listed by `librarian orphans`");
        let _guard = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = serde_json::to_string(orphan).unwrap_or_default();
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            tracing::error!(path = %self.path.display(), error = %e, orphan = %line, "cannot write the orphans file");
        }
    }
}

/// Every leftover in an orphans file; none when the file does not exist.
pub fn list(path: &Path) -> std::io::Result<Vec<Orphan>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}
