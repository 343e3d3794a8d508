//! Records in MongoDB: the record as a document (labels a real subdocument, `received_at` a
//! BSON date), and optionally the photo, inline or in GridFS.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use librarian_model::{ImageFormat, Record};
use mongodb::bson::{self, Bson, Document, RawDocumentBuf, doc};
use mongodb::error::{ErrorKind, GridFsErrorKind, WriteFailure};
use mongodb::gridfs::GridFsBucket;
use mongodb::options::{
    Acknowledgment, ClientOptions, GridFsBucketOptions, IndexOptions, WriteConcern,
};
use mongodb::{Client, Collection, IndexModel};
use uuid::Uuid;

use super::{MongoConfig, MongoImage};
use crate::{
    Actor, ActorError, HistoryCursor, HistoryPage, HistoryQuery, HistoryReader, ImageReader,
    PageBuilder, RecordReader,
};

/// Records fetched per round trip when paging history.
const HISTORY_BATCH: u32 = 8;

/// Photos up to this size may be kept inside the record's document (MongoDB's limit is 16 MiB).
const INLINE_LIMIT: usize = 15 * 1024 * 1024;

pub struct MongoActor {
    client: Client,
    records: Collection<Document>,
    bucket: GridFsBucket,
    database: String,
    config: MongoConfig,
    timeout: Duration,
}

fn store_error(e: mongodb::error::Error) -> ActorError {
    ActorError::Io(std::io::Error::other(e.to_string()))
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(failure) => failure
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|w| w.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

fn is_file_not_found(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::GridFs(GridFsErrorKind::FileNotFound { .. })
    )
}

impl MongoActor {
    /// Connects, and creates the indexes the actor needs (unique id, history, duplicates).
    pub async fn open(config: &MongoConfig) -> Result<Self, ActorError> {
        let timeout = config.operation_timeout;
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(store_error)?;
        options.connect_timeout = Some(config.connect_timeout);
        options.server_selection_timeout = Some(config.server_selection_timeout);
        let w = match config.write_concern.parse::<u32>() {
            Ok(nodes) => Acknowledgment::Nodes(nodes),
            Err(_) if config.write_concern == "majority" => Acknowledgment::Majority,
            Err(_) => Acknowledgment::Custom(config.write_concern.clone()),
        };
        options.write_concern = Some(WriteConcern::builder().w(w).journal(config.journal).build());
        options.app_name = Some("librarian".into());
        let client = Client::with_options(options).map_err(store_error)?;
        let db = client.database(&config.database);
        let records = db.collection::<Document>(&config.collection);
        let bucket = db.gridfs_bucket(
            GridFsBucketOptions::builder()
                .bucket_name(config.gridfs_bucket.clone())
                .build(),
        );
        let actor = Self {
            client,
            records,
            bucket,
            database: config.database.clone(),
            config: config.clone(),
            timeout,
        };
        let indexes = [
            IndexModel::builder()
                .keys(doc! {"id": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
            IndexModel::builder()
                .keys(doc! {"pipeline": 1, "received_at": -1})
                .build(),
            IndexModel::builder().keys(doc! {"image.sha256": 1}).build(),
        ];
        actor.bounded(actor.records.create_indexes(indexes)).await?;
        Ok(actor)
    }

    /// Runs one driver call under the operation timeout.
    async fn bounded<T>(
        &self,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, ActorError> {
        self.timed(call).await?.map_err(store_error)
    }

    /// The driver's answer within the operation timeout, its error kept for inspection.
    async fn timed<T>(
        &self,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<mongodb::error::Result<T>, ActorError> {
        match tokio::time::timeout(self.timeout, call.into_future()).await {
            Ok(result) => Ok(result),
            Err(_) => Err(ActorError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "MongoDB did not answer within {} ms",
                    self.timeout.as_millis()
                ),
            ))),
        }
    }

    fn document(&self, record: &Record, image: &[u8]) -> Result<Document, ActorError> {
        let mut document =
            bson::to_document(record).map_err(|e| ActorError::Corrupt(e.to_string()))?;
        document.insert("_id", record.id.to_string());
        document.insert(
            "received_at",
            bson::DateTime::from_millis(record.received_at.timestamp_millis()),
        );
        if self.config.image == MongoImage::Inline {
            document.insert(
                "image_bytes",
                bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: image.to_vec(),
                },
            );
        }
        Ok(document)
    }

    async fn upload(&self, record: &Record, image: &[u8]) -> Result<(), ActorError> {
        let filename = format!("{}.{}", record.id, record.image.format.extension());
        let mut upload = self
            .bounded(
                self.bucket
                    .open_upload_stream(filename)
                    .id(Bson::String(record.id.to_string())),
            )
            .await?;
        let written = tokio::time::timeout(self.timeout, async {
            upload.write_all(image).await?;
            upload.close().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            // GridFS streams wrap the driver's error in an io::Error; its kind is still typed.
            Ok(Err(e))
                if e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<mongodb::error::Error>())
                    .is_some_and(is_duplicate_key) =>
            {
                Err(ActorError::AlreadyExists(record.id))
            }
            Ok(Err(e)) => Err(ActorError::Io(e)),
            Err(_) => {
                let _ = upload.abort().await;
                Err(ActorError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "GridFS upload timed out",
                )))
            }
        }
    }
}

/// A stored document back into a record.
fn to_record(mut document: Document) -> Result<Record, ActorError> {
    document.remove("_id");
    document.remove("image_bytes");
    if let Ok(at) = document.get_datetime("received_at") {
        let text = at
            .try_to_rfc3339_string()
            .map_err(|e| ActorError::Corrupt(e.to_string()))?;
        document.insert("received_at", text);
    }
    bson::from_document(document).map_err(|e| ActorError::Corrupt(e.to_string()))
}

#[async_trait]
impl Actor for MongoActor {
    fn location(&self, record: &Record) -> String {
        format!(
            "mongodb:{}/{}/{}",
            self.database, self.config.collection, record.id
        )
    }

    async fn store(&self, record: &Record, image: &[u8]) -> Result<(), ActorError> {
        if self.config.image == MongoImage::Inline && image.len() > INLINE_LIMIT {
            return Err(ActorError::TooLarge {
                bytes: image.len() as u64,
                limit: INLINE_LIMIT as u64,
            });
        }
        let document = self.document(record, image)?;
        if self.config.image == MongoImage::Gridfs {
            self.upload(record, image).await?;
        }
        match tokio::time::timeout(
            self.timeout,
            self.records.insert_one(document).into_future(),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_duplicate_key(&e) => Err(ActorError::AlreadyExists(record.id)),
            outcome => {
                if self.config.image == MongoImage::Gridfs {
                    let _ = self
                        .bounded(self.bucket.delete(Bson::String(record.id.to_string())))
                        .await;
                }
                match outcome {
                    Ok(Err(e)) => Err(store_error(e)),
                    _ => Err(ActorError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "MongoDB insert timed out",
                    ))),
                }
            }
        }
    }

    async fn remove(&self, id: Uuid) -> Result<(), ActorError> {
        self.bounded(self.records.delete_one(doc! {"_id": id.to_string()}))
            .await?;
        if self.config.image == MongoImage::Gridfs {
            match self
                .timed(self.bucket.delete(Bson::String(id.to_string())))
                .await?
            {
                Err(e) if !is_file_not_found(&e) => return Err(store_error(e)),
                _ => {}
            }
        }
        Ok(())
    }

    async fn ready(&self) -> Result<(), ActorError> {
        self.bounded(
            self.client
                .database(&self.database)
                .run_command(doc! {"ping": 1}),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl RecordReader for MongoActor {
    async fn record(&self, id: Uuid) -> Result<Option<Record>, ActorError> {
        let projection = doc! {"image_bytes": 0};
        let found = self
            .bounded(
                self.records
                    .find_one(doc! {"_id": id.to_string()})
                    .projection(projection),
            )
            .await?;
        found.map(to_record).transpose()
    }
}

/// Built as a reader only when the config keeps images (`image` is not `none`).
#[async_trait]
impl ImageReader for MongoActor {
    async fn image(&self, id: Uuid, _format: ImageFormat) -> Result<Option<Vec<u8>>, ActorError> {
        match self.config.image {
            MongoImage::None => Ok(None),
            MongoImage::Inline => {
                let found = self
                    .bounded(
                        self.records
                            .find_one(doc! {"_id": id.to_string()})
                            .projection(doc! {"image_bytes": 1}),
                    )
                    .await?;
                Ok(found.and_then(|d| d.get_binary_generic("image_bytes").ok().cloned()))
            }
            MongoImage::Gridfs => {
                let mut stream = match self
                    .timed(
                        self.bucket
                            .open_download_stream(Bson::String(id.to_string())),
                    )
                    .await?
                {
                    Ok(stream) => stream,
                    Err(e) if is_file_not_found(&e) => return Ok(None),
                    Err(e) => return Err(store_error(e)),
                };
                let mut bytes = Vec::new();
                tokio::time::timeout(self.timeout, stream.read_to_end(&mut bytes))
                    .await
                    .map_err(|_| {
                        ActorError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "GridFS download timed out",
                        ))
                    })??;
                Ok(Some(bytes))
            }
        }
    }
}

#[async_trait]
impl HistoryReader for MongoActor {
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, ActorError> {
        let mut filter = doc! {"pipeline": {"$in": &query.pipelines}};
        match query.before {
            Some(HistoryCursor::Record(id)) => {
                // Only the cursor's time is read, so a record that does not parse still pages.
                let find = self
                    .records
                    .find_one(doc! {"_id": id.to_string()})
                    .projection(doc! {"received_at": 1});
                let at = self.bounded(find).await?;
                let Some(at) = at.and_then(|d| d.get_datetime("received_at").ok().copied()) else {
                    return Ok(HistoryPage::default());
                };
                filter.insert(
                    "$or",
                    vec![
                        doc! {"received_at": {"$lt": at}},
                        doc! {"received_at": at, "_id": {"$lt": id.to_string()}},
                    ],
                );
            }
            Some(HistoryCursor::Time(at)) => {
                filter.insert(
                    "received_at",
                    doc! {"$lt": bson::DateTime::from_millis(at.timestamp_millis())},
                );
            }
            None => {}
        }
        // Raw documents, fetched a few at a time: each one's size is known before it is
        // parsed, and the page stops reading once it is full.
        let raw = self.records.clone_with_type::<RawDocumentBuf>();
        let find = raw
            .find(filter)
            .sort(doc! {"received_at": -1, "_id": -1})
            .limit(query.limit as i64)
            .batch_size(HISTORY_BATCH)
            .projection(doc! {"image_bytes": 0});
        let mut cursor = self.bounded(find).await?;
        let read = async {
            let mut page = PageBuilder::new(query);
            while let Some(raw) = cursor.try_next().await.map_err(store_error)? {
                let size = raw.as_bytes().len();
                if !page.fits(size) {
                    break;
                }
                let key = raw.get_str("_id").map(str::to_owned);
                match key.as_deref().map(Uuid::parse_str) {
                    Ok(Ok(id)) => page.add(id, size, || {
                        let document = raw
                            .to_document()
                            .map_err(|e| ActorError::Corrupt(e.to_string()))?;
                        to_record(document).map(Some)
                    }),
                    _ => page.skip(
                        key.unwrap_or_else(|_| "(no _id)".into()),
                        "the document's _id is not a record id".into(),
                    ),
                }
            }
            Ok(page.finish())
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| {
                ActorError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "MongoDB history timed out",
                ))
            })?
    }

    async fn find_image(&self, sha256: &str, pipeline: &str) -> Result<Option<Uuid>, ActorError> {
        let find = self
            .records
            .find_one(doc! {"image.sha256": sha256, "pipeline": pipeline})
            .sort(doc! {"received_at": 1})
            .projection(doc! {"id": 1});
        let found = self.bounded(find).await?;
        Ok(found.and_then(|d| d.get_str("id").ok().and_then(|id| id.parse().ok())))
    }
}
