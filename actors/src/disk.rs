//! Records as files: `<id>.<ext>` holds the original bytes, `<id>.json` the record. Each file is
//! written to a temporary file in the same folder, synced, then renamed, and the record is
//! written last, so a crash leaves either a whole record or none (a stray image at most).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use librarian_model::{ImageFormat, Record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Actor, ActorError, HistoryCursor, HistoryPage, HistoryQuery, HistoryReader, ImageReader,
    PageBuilder, RecordReader,
};

/// Local folder storage: the embedded default, for a laptop or a single node.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Folder for the records; created when missing.
    #[serde(default = "default_dir")]
    #[schemars(extend("format" = "path"))]
    pub dir: PathBuf,
}

fn default_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self { dir: default_dir() }
    }
}

/// What history and duplicate detection need to know of a stored record, kept in memory.
#[derive(Clone, Debug)]
struct Entry {
    pipeline: String,
    format: ImageFormat,
    sha256: String,
}

#[derive(Default)]
struct Index {
    by_time: BTreeMap<(DateTime<Utc>, Uuid), Entry>,
    time_of: HashMap<Uuid, DateTime<Utc>>,
    /// Ids being written now, so two writers of one id cannot both succeed.
    writing: HashSet<Uuid>,
}

impl Index {
    fn insert(&mut self, record: &Record) {
        let entry = Entry {
            pipeline: record.pipeline.clone(),
            format: record.image.format,
            sha256: record.image.sha256.clone(),
        };
        self.by_time.insert((record.received_at, record.id), entry);
        self.time_of.insert(record.id, record.received_at);
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(at) = self.time_of.remove(&id) {
            self.by_time.remove(&(at, id));
        }
    }

    fn get(&self, id: Uuid) -> Option<&Entry> {
        let at = self.time_of.get(&id)?;
        self.by_time.get(&(*at, id))
    }
}

pub struct DiskActor {
    dir: PathBuf,
    index: Arc<Mutex<Index>>,
}

impl DiskActor {
    pub async fn open(config: &DiskConfig) -> std::io::Result<Self> {
        let dir = config.dir.clone();
        let index = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || load_index(&dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Self {
            dir,
            index: Arc::new(Mutex::new(index)),
        })
    }

    fn record_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn image_path(&self, id: Uuid, format: ImageFormat) -> PathBuf {
        self.dir.join(format!("{id}.{}", format.extension()))
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated: every update
        // is a single insert or remove, so the poisoned state is still consistent.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn load_index(dir: &Path) -> std::io::Result<Index> {
    std::fs::create_dir_all(dir)?;
    let mut index = Index::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            match read_record(&path) {
                Ok(Some(record)) => index.insert(&record),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable record")
                }
            }
        }
    }
    Ok(index)
}

fn read_record(path: &Path) -> Result<Option<Record>, ActorError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ActorError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes `bytes` to `path` through a synced temporary file in the same folder: a reader sees
/// the old file or the whole new one, never a part.
pub fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes a file; one already gone is not an error.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ActorError> + Send + 'static,
) -> Result<T, ActorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ActorError::Io(std::io::Error::other(e)))?
}

#[async_trait]
impl Actor for DiskActor {
    fn location(&self, record: &Record) -> String {
        self.image_path(record.id, record.image.format)
            .display()
            .to_string()
    }

    async fn store(&self, record: &Record, image: &[u8]) -> Result<(), ActorError> {
        let id = record.id;
        {
            let mut index = self.index();
            if index.time_of.contains_key(&id) || !index.writing.insert(id) {
                return Err(ActorError::AlreadyExists(id));
            }
        }
        let (dir, record_path, image_path) = (
            self.dir.clone(),
            self.record_path(id),
            self.image_path(id, record.image.format),
        );
        let json =
            serde_json::to_vec_pretty(record).map_err(|e| ActorError::Corrupt(e.to_string()));
        let image = image.to_vec();
        let written = match json {
            Ok(json) => {
                blocking(move || {
                    write_atomically(&dir, &image_path, &image)?;
                    write_atomically(&dir, &record_path, &json).inspect_err(|_| {
                        let _ = remove_if_present(&image_path);
                    })?;
                    Ok(())
                })
                .await
            }
            Err(e) => Err(e),
        };
        let mut index = self.index();
        index.writing.remove(&id);
        if written.is_ok() {
            index.insert(record);
        }
        written
    }

    async fn remove(&self, id: Uuid) -> Result<(), ActorError> {
        let format = self.index().get(id).map(|e| e.format);
        let record_path = self.record_path(id);
        let images: Vec<PathBuf> = match format {
            Some(f) => vec![self.image_path(id, f)],
            None => ImageFormat::ALL
                .iter()
                .map(|f| self.image_path(id, *f))
                .collect(),
        };
        blocking(move || {
            remove_if_present(&record_path)?;
            images.iter().try_for_each(|p| remove_if_present(p))?;
            Ok(())
        })
        .await?;
        self.index().remove(id);
        Ok(())
    }

    async fn ready(&self) -> Result<(), ActorError> {
        let dir = self.dir.clone();
        blocking(move || {
            let probe = tempfile::Builder::new()
                .prefix(".ready-")
                .tempfile_in(&dir)?;
            drop(probe);
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl RecordReader for DiskActor {
    async fn record(&self, id: Uuid) -> Result<Option<Record>, ActorError> {
        let path = self.record_path(id);
        blocking(move || read_record(&path)).await
    }
}

#[async_trait]
impl ImageReader for DiskActor {
    async fn image(&self, id: Uuid, format: ImageFormat) -> Result<Option<Vec<u8>>, ActorError> {
        match tokio::fs::read(self.image_path(id, format)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl HistoryReader for DiskActor {
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, ActorError> {
        let ids: Vec<Uuid> = {
            let index = self.index();
            let upper = match query.before {
                Some(HistoryCursor::Record(id)) => match index.time_of.get(&id) {
                    Some(at) => Some((*at, id)),
                    None => return Ok(HistoryPage::default()),
                },
                Some(HistoryCursor::Time(at)) => Some((at, Uuid::nil())),
                None => None,
            };
            let range = match upper {
                Some(key) => index.by_time.range(..key),
                None => index.by_time.range(..),
            };
            range
                .rev()
                .filter(|(_, e)| query.pipelines.contains(&e.pipeline))
                .take(query.limit)
                .map(|((_, id), _)| *id)
                .collect()
        };
        let files: Vec<(Uuid, PathBuf)> =
            ids.iter().map(|id| (*id, self.record_path(*id))).collect();
        let query = query.clone();
        blocking(move || {
            let mut page = PageBuilder::new(&query);
            for (id, path) in files {
                // A file's size says what reading it costs before it is read.
                let size = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
                if !page.fits(size) {
                    break;
                }
                page.add(id, size, || read_record(&path));
            }
            Ok(page.finish())
        })
        .await
    }

    async fn find_image(&self, sha256: &str, pipeline: &str) -> Result<Option<Uuid>, ActorError> {
        let index = self.index();
        Ok(index
            .by_time
            .iter()
            .find(|(_, e)| e.sha256 == sha256 && e.pipeline == pipeline)
            .map(|((_, id), _)| *id))
    }
}

#[cfg(test)]
mod tests {
    use librarian_model::ImageFacts;

    use super::*;

    fn record(id: Uuid, at: i64, pipeline: &str, sha: &str) -> Record {
        Record {
            id,
            pipeline: pipeline.into(),
            received_at: DateTime::from_timestamp(at, 0).unwrap(),
            labels: Default::default(),
            image: ImageFacts {
                format: ImageFormat::Png,
                width: 1,
                height: 1,
                bytes: 3,
                sha256: sha.into(),
            },
            barcodes: vec![],
            metadata: None,
            text: None,
            duplicate_of: None,
            stored: vec![],
        }
    }

    #[tokio::test]
    async fn stores_reads_and_removes_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let actor = DiskActor::open(&DiskConfig {
            dir: dir.path().into(),
        })
        .await
        .unwrap();
        let r = record(Uuid::now_v7(), 100, "default", "aa");
        actor.store(&r, b"png").await.unwrap();
        assert_eq!(actor.record(r.id).await.unwrap().unwrap(), r);
        assert_eq!(
            actor.image(r.id, ImageFormat::Png).await.unwrap().unwrap(),
            b"png"
        );
        assert!(matches!(
            actor.store(&r, b"png").await,
            Err(ActorError::AlreadyExists(_))
        ));
        actor.remove(r.id).await.unwrap();
        assert!(actor.record(r.id).await.unwrap().is_none());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "files left after remove: {left:?}");
    }

    #[tokio::test]
    async fn history_is_newest_first_paged_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = DiskConfig {
            dir: dir.path().into(),
        };
        let actor = DiskActor::open(&config).await.unwrap();
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            let pipeline = if i == 2 { "other" } else { "default" };
            actor
                .store(&record(*id, i as i64, pipeline, &format!("{i}")), b"x")
                .await
                .unwrap();
        }
        let reopened = DiskActor::open(&config).await.unwrap();
        let page = |before| HistoryQuery {
            pipelines: vec!["default".into()],
            limit: 2,
            before,
            max_bytes: 1 << 20,
        };
        let first = reopened.history(&page(None)).await.unwrap();
        assert_eq!(listed(&first), [ids[4], ids[3]]);
        assert!(first.more);
        let second = reopened
            .history(&page(Some(HistoryCursor::Record(ids[3]))))
            .await
            .unwrap();
        assert_eq!(listed(&second), [ids[1], ids[0]]);
        assert_eq!(
            reopened.find_image("3", "default").await.unwrap(),
            Some(ids[3])
        );
    }

    fn listed(page: &HistoryPage) -> Vec<Uuid> {
        page.records.iter().map(|r| r.id).collect()
    }

    #[tokio::test]
    async fn a_page_skips_what_it_cannot_read_and_stops_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let actor = DiskActor::open(&DiskConfig {
            dir: dir.path().into(),
        })
        .await
        .unwrap();
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            actor
                .store(&record(*id, i as i64, "default", "s"), b"x")
                .await
                .unwrap();
        }
        let size = std::fs::metadata(actor.record_path(ids[0])).unwrap().len() as usize;
        // The newest is broken, the next one grew past what a page holds.
        std::fs::write(actor.record_path(ids[4]), b"{not json").unwrap();
        let mut big = serde_json::to_value(actor.record(ids[3]).await.unwrap()).unwrap();
        big["labels"]["filler"] = "x".repeat(4 * size).into();
        std::fs::write(actor.record_path(ids[3]), big.to_string()).unwrap();
        let query = |before| HistoryQuery {
            pipelines: vec!["default".into()],
            limit: 10,
            before,
            max_bytes: 2 * size + 16,
        };
        let first = actor.history(&query(None)).await.unwrap();
        assert_eq!(listed(&first), [ids[2], ids[1]], "two records fit");
        let skipped: Vec<&str> = first.skipped.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(skipped, [ids[4].to_string(), ids[3].to_string()]);
        assert!(
            first.skipped[1]
                .reason
                .contains("more than a history page holds")
        );
        assert!(
            first.more,
            "the page ended at its size, not at the last record"
        );
        assert_eq!(first.last, Some(ids[1]));
        let second = actor
            .history(&query(first.last.map(HistoryCursor::Record)))
            .await
            .unwrap();
        assert_eq!(listed(&second), [ids[0]]);
        assert!(!second.more);
        let from_broken = actor
            .history(&query(Some(HistoryCursor::Record(ids[4]))))
            .await
            .unwrap();
        assert_eq!(
            listed(&from_broken)[0],
            ids[2],
            "a skipped record is a cursor too"
        );
    }
}
