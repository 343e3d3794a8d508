//! The queue on RabbitMQ. A job's message (persistent, in a durable queue) carries its whole
//! submission; its state lives in MongoDB ([`SharedJobs`]) so that every replica can answer
//! for it. A message is published and confirmed by the broker before the 202, and
//! acknowledged only once the job's outcome is recorded: a worker that dies leaves its
//! message to be delivered again. A run that may pass later goes through `<queue>.retry`,
//! whose messages expire back into the queue after the backoff; a job that failed for good
//! leaves its message in `<queue>.dead`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    Acker, BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind,
};
use librarian_model::{ImageFacts, Labels, MetadataReport};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, broadcast};
use uuid::Uuid;

use super::shared::SharedJobs;
use super::{Claim, Claimed, Enqueued, Entry, Job, JobState, NewJob, QueueError, Source};
use crate::config::queue::AmqpQueueConfig;
use crate::pipeline::Prepared;

/// How long a worker waits for a message before it looks whether it should stop.
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// The wait before the events of jobs are listened to again after the broker went away.
const RELISTEN: Duration = Duration::from_secs(1);

/// Everything of a submission but its image, which follows it in the message: the image's
/// facts, or the URL the job fetches it from.
#[derive(Serialize, Deserialize)]
struct Head {
    id: Uuid,
    pipeline: String,
    facts: Option<ImageFacts>,
    metadata: Option<MetadataReport>,
    url: Option<String>,
    labels: Labels,
    received_at: DateTime<Utc>,
}

impl Head {
    fn source(self, image: Bytes) -> Result<Source, QueueError> {
        match (self.facts, self.url) {
            (Some(facts), None) => Ok(Source::Prepared(Prepared {
                image,
                facts,
                metadata: self.metadata,
                labels: self.labels,
                received_at: self.received_at,
            })),
            (None, Some(url)) => Ok(Source::Url {
                url,
                labels: self.labels,
                received_at: self.received_at,
            }),
            _ => Err(QueueError::Unreadable(
                "a message has both or neither of an image and a URL".into(),
            )),
        }
    }
}

/// A message: the head's length (4 bytes, big-endian), the head as JSON, the image.
fn encode(id: Uuid, pipeline: &str, source: &Source) -> Vec<u8> {
    let (facts, metadata, url, image) = match source {
        Source::Prepared(p) => (
            Some(p.facts.clone()),
            p.metadata.clone(),
            None,
            &p.image[..],
        ),
        Source::Url { url, .. } => (None, None, Some(url.clone()), &[][..]),
    };
    let head = Head {
        id,
        pipeline: pipeline.to_owned(),
        facts,
        metadata,
        url,
        labels: source.labels().clone(),
        received_at: source.received_at(),
    };
    let head = serde_json::to_vec(&head).expect("a submission serializes");
    let length = u32::try_from(head.len()).expect("labels are bounded far below 4 GiB");
    let mut body = Vec::with_capacity(4 + head.len() + image.len());
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(&head);
    body.extend_from_slice(image);
    body
}

fn decode(body: &[u8]) -> Result<(Head, Bytes), QueueError> {
    let short = || QueueError::Unreadable("the message is shorter than its head".into());
    let (length, rest) = body.split_first_chunk::<4>().ok_or_else(short)?;
    let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| short())?;
    if rest.len() < length {
        return Err(short());
    }
    let (head, image) = rest.split_at(length);
    let head = serde_json::from_slice(head).map_err(QueueError::Corrupt)?;
    Ok((head, Bytes::copy_from_slice(image)))
}

fn dead_letters_to(queue: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    let to = |name: &str| AMQPValue::LongString(LongString::from(name));
    arguments.insert("x-dead-letter-exchange".into(), to(""));
    arguments.insert("x-dead-letter-routing-key".into(), to(queue));
    arguments
}

fn persistent(id: Uuid) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(id.to_string().into())
}

/// A job whose outcome could not be recorded runs again: its message goes back to the
/// queue (delivered again, it finds its job running and takes it over).
async fn requeued_unless_ok<T>(
    outcome: Result<T, QueueError>,
    acker: &Acker,
) -> Result<T, QueueError> {
    if outcome.is_err() {
        let again = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        let _ = acker.nack(again).await;
    }
    outcome
}

/// A connection with its channel for publishing, in confirm mode.
struct Link {
    connection: Connection,
    publisher: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

/// The consumer of one process's workers, on its own channel.
struct Consuming {
    link: Arc<Link>,
    _channel: Channel,
    consumer: Consumer,
}

/// A message a worker took: acknowledged once its job's outcome is recorded.
pub struct Ticket {
    acker: Acker,
    body: Vec<u8>,
}

pub struct AmqpQueue {
    config: AmqpQueueConfig,
    state: SharedJobs,
    link: Mutex<Option<Arc<Link>>>,
    consuming: Mutex<Option<Consuming>>,
}

impl AmqpQueue {
    /// Connects to MongoDB and to the broker, and declares the queues: a start with either
    /// out of reach fails, as for a storage actor.
    pub async fn open(config: &AmqpQueueConfig) -> Result<Self, QueueError> {
        let state = SharedJobs::open(&config.state, config.connect_timeout).await?;
        let queue = Self {
            config: config.clone(),
            state,
            link: Mutex::default(),
            consuming: Mutex::default(),
        };
        queue.link().await?;
        Ok(queue)
    }

    fn retry_queue(&self) -> String {
        format!("{}.retry", self.config.queue)
    }

    fn events_exchange(&self) -> String {
        format!("{}.events", self.config.queue)
    }

    async fn connect(&self) -> Result<Link, QueueError> {
        let connect = Connection::connect(&self.config.url, ConnectionProperties::default());
        let connection = tokio::time::timeout(self.config.connect_timeout, connect)
            .await
            .map_err(|_| QueueError::Timeout("connecting to the broker"))??;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let queue = self.config.queue.as_str();
        let dead = format!("{queue}.dead");
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        publisher
            .queue_declare(dead.as_str().into(), durable, FieldTable::default())
            .await?;
        publisher
            .queue_declare(queue.into(), durable, dead_letters_to(&dead))
            .await?;
        publisher
            .queue_declare(self.retry_queue().into(), durable, dead_letters_to(queue))
            .await?;
        publisher
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Link {
            connection,
            publisher,
        })
    }

    /// The connection, made again when the broker went away.
    async fn link(&self) -> Result<Arc<Link>, QueueError> {
        let mut link = self.link.lock().await;
        if let Some(usable) = link.as_ref().filter(|l| l.usable()) {
            return Ok(usable.clone());
        }
        *link = None;
        let fresh = Arc::new(self.connect().await?);
        *link = Some(fresh.clone());
        Ok(fresh)
    }

    /// Publishes a message to `queue` and waits until the broker has it on disk.
    async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
        let link = self.link().await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmed = async {
            let confirm = link
                .publisher
                .basic_publish("".into(), queue.into(), options, body, properties)
                .await?;
            Ok::<_, QueueError>(confirm.await?)
        };
        let confirmation = tokio::time::timeout(self.config.connect_timeout, confirmed)
            .await
            .map_err(|_| QueueError::Timeout("the broker's confirmation"))??;
        match confirmation.is_ack() && confirmation.take_message().is_none() {
            true => Ok(()),
            false => Err(QueueError::Refused),
        }
    }

    /// Queues a submission unless `max_queued` messages wait. The message goes first: a
    /// process that dies after it leaves a job that a worker records when it takes it.
    pub async fn enqueue(&self, new: NewJob, max_queued: usize) -> Result<Enqueued, QueueError> {
        let body = encode(new.id, &new.pipeline, &new.source);
        let entry = Entry::queued(new.id, new.pipeline, &new.source);
        if let Some(kept) = self.state.entry(new.id).await? {
            return Ok(match kept.same_content(&entry) {
                true => Enqueued::Same(kept.job),
                false => Enqueued::Conflict(new.id),
            });
        }
        let link = self.link().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let waiting = link
            .publisher
            .queue_declare(
                self.config.queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?
            .message_count();
        if usize::try_from(waiting).unwrap_or(usize::MAX) >= max_queued {
            return Err(QueueError::Full);
        }
        self.publish(&self.config.queue, &body, persistent(new.id))
            .await?;
        Ok(match self.state.insert(&entry).await? {
            None => Enqueued::Queued(entry.job),
            Some(kept) if kept.same_content(&entry) => Enqueued::Same(kept.job),
            Some(_) => Enqueued::Conflict(new.id),
        })
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        Ok(self.state.entry(id).await?.map(|e| e.job))
    }

    /// The next message for this process's workers, waiting at most a second; `prefetch`
    /// messages at most are held unacknowledged.
    pub async fn claim(&self, prefetch: u16) -> Result<Option<(Claim, Ticket)>, QueueError> {
        let mut consuming = self.consuming.lock().await;
        if consuming.as_ref().is_none_or(|c| !c.link.usable()) {
            *consuming = None;
            let link = self.link().await?;
            let channel = link.connection.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    self.config.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            *consuming = Some(Consuming {
                link,
                _channel: channel,
                consumer,
            });
        }
        let consumer = &mut consuming.as_mut().expect("set above").consumer;
        let Ok(next) = tokio::time::timeout(IDLE_LOOK, consumer.next()).await else {
            return Ok(None);
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                *consuming = None;
                return Err(error.into());
            }
            None => {
                *consuming = None;
                return Err(QueueError::Timeout("the broker ended the consumer"));
            }
        };
        drop(consuming);
        let acker = delivery.acker.clone();
        // Whatever failed (MongoDB, most likely), the message goes back to the queue.
        requeued_unless_ok(self.take(delivery).await, &acker).await
    }

    /// Records the job of a delivered message as running, unless there is nothing to run.
    async fn take(&self, delivery: Delivery) -> Result<Option<(Claim, Ticket)>, QueueError> {
        let redelivered = delivery.redelivered;
        let ticket = Ticket {
            acker: delivery.acker,
            body: delivery.data,
        };
        let dead = BasicRejectOptions { requeue: false };
        let decoded = decode(&ticket.body)
            .and_then(|(head, image)| Ok((head.id, head.pipeline.clone(), head.source(image)?)));
        let (id, pipeline, source) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::error!(%error, "a message that is no job was moved to the dead letters");
                ticket.acker.reject(dead).await?;
                return Ok(None);
            }
        };
        let entry = Entry::queued(id, pipeline, &source);
        if let Some(kept) = self.state.insert(&entry).await?
            && !kept.same_content(&entry)
        {
            tracing::error!(job = %id, "a message whose job holds other content was dropped");
            ticket.acker.reject(dead).await?;
            return Ok(None);
        }
        // A message delivered again finds its job running (its worker died); any other
        // copy of a job that runs or has ended is spare.
        let Some(job) = self.state.start(id, redelivered, Utc::now()).await? else {
            ticket.acker.ack(BasicAckOptions::default()).await?;
            return Ok(None);
        };
        Ok(Some((
            Claim::Ready(Box::new(Claimed { job, source })),
            ticket,
        )))
    }

    pub async fn step(&self, id: Uuid, step: crate::pipeline::Step) -> Result<(), QueueError> {
        self.state.step(id, step, Utc::now()).await
    }

    /// Records a job's final state, then lets go of its message: into the dead letters
    /// when it failed.
    pub async fn finish(
        &self,
        ticket: Ticket,
        id: Uuid,
        state: JobState,
        problem: Option<serde_json::Value>,
    ) -> Result<Job, QueueError> {
        let job = self
            .state
            .end(id, state, problem.as_ref(), Utc::now())
            .await?;
        match state {
            JobState::Failed => {
                ticket
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await?
            }
            _ => ticket.acker.ack(BasicAckOptions::default()).await?,
        };
        Ok(job)
    }

    /// Queues a job again after `delay`: a copy of its message waits in `<queue>.retry`
    /// until it expires back into the queue; only then is the message it ran from let go.
    pub async fn retry(
        &self,
        ticket: Ticket,
        id: Uuid,
        delay: Duration,
        problem: serde_json::Value,
    ) -> Result<Job, QueueError> {
        let expiration = delay.as_millis().max(1).to_string();
        let properties = persistent(id).with_expiration(expiration.into());
        let published = self
            .publish(&self.retry_queue(), &ticket.body, properties)
            .await;
        requeued_unless_ok(published, &ticket.acker).await?;
        let ended = self
            .state
            .end(id, JobState::Queued, Some(&problem), Utc::now())
            .await;
        let job = requeued_unless_ok(ended, &ticket.acker).await?;
        ticket.acker.ack(BasicAckOptions::default()).await?;
        Ok(job)
    }

    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        self.state.depth().await
    }

    pub async fn forget_finished(&self, before: DateTime<Utc>) -> Result<usize, QueueError> {
        self.state.forget_finished(before).await
    }

    /// Tells every process a job changed; lost when the broker is away (a client of the
    /// events reads the state again when it reconnects).
    pub async fn announce(&self, job: &Job) {
        let body = serde_json::to_vec(job).expect("a job serializes");
        let Ok(link) = self.link().await else { return };
        let _ = link
            .publisher
            .basic_publish(
                self.events_exchange().into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await;
    }

    /// Passes every job change any process announces to `changes`, for as long as the
    /// process runs; when the broker goes away, listens again once it is back.
    pub async fn listen(self: Arc<Self>, changes: broadcast::Sender<Job>) {
        loop {
            if let Err(error) = self.relay(&changes).await {
                tracing::warn!(%error, "job events from the broker stopped; listening again");
            }
            tokio::time::sleep(RELISTEN).await;
        }
    }

    async fn relay(&self, changes: &broadcast::Sender<Job>) -> Result<(), QueueError> {
        let link = self.link().await?;
        let channel = link.connection.create_channel().await?;
        let mine = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), mine, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.events_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                no_ack,
                FieldTable::default(),
            )
            .await?;
        while let Some(delivery) = consumer.next().await {
            if let Ok(job) = serde_json::from_slice::<Job>(&delivery?.data) {
                let _ = changes.send(job);
            }
        }
        Ok(())
    }
}
