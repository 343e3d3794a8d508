//! Notifiers: other systems told when a record is stored or a submission rejected. An event
//! goes to the outbox first and is delivered from there, at least once, by the delivery
//! (`crate::delivery`); a notifier that fails never undoes a record.

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "email")]
mod email;
pub mod outbox;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use librarian_model::{Labels, Record, Violation};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::notify::{EventKind, NotifierConfig, OutboxConfig};
use crate::config::queue::QueueConfig;
use outbox::{Held, Letter, Outbox, OutboxError};

/// One role: telling one system of one event.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers the event (as JSON, the same every attempt); an error says whether another
    /// attempt may succeed.
    async fn deliver(&self, event: &Value) -> Result<(), DeliveryError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the receiver answered {0}")]
    Status(u16),
    #[error("the receiver answered 410 Gone: this event is not sent to it again")]
    Gone,
    #[error("{what}: {source}")]
    Transport {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the message")]
    Nacked,
    #[error("the receiver refused the event for good: {0}")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no notifier named `{0}` is configured (any more)")]
    Unknown(String),
}

impl DeliveryError {
    /// Whether no later attempt can succeed.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Gone | Self::Rejected(_))
    }

    fn transport(
        what: &'static str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Self {
        move |source| Self::Transport { what, source }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kind's cargo feature was off when this binary was built.
    #[error(
        "this build of librarian has no `{0}` notifier: it needs the cargo feature `{0}`, which \
         the default build and the Docker image have (a `--no-default-features` build does \
         not; add `--features {0}`)"
    )]
    NotBuiltIn(&'static str),
    #[error("url: {0}")]
    Url(String),
    #[cfg(feature = "email")]
    #[error("{field}: {source}")]
    Address {
        field: &'static str,
        #[source]
        source: lettre::address::AddressError,
    },
    #[cfg(feature = "email")]
    #[error("the SMTP transport: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
}

/// The one place a notifier's config becomes a component.
pub fn build(config: &NotifierConfig) -> Result<Box<dyn Notifier>, BuildError> {
    match config {
        NotifierConfig::Webhook(c) => Ok(Box::new(webhook::Webhook::new(c)?)),
        #[cfg(feature = "amqp")]
        NotifierConfig::Amqp(c) => Ok(Box::new(amqp::AmqpNotifier::new(c))),
        #[cfg(not(feature = "amqp"))]
        NotifierConfig::Amqp(_) => Err(BuildError::NotBuiltIn("amqp")),
        #[cfg(feature = "email")]
        NotifierConfig::Email(c) => Ok(Box::new(email::Email::new(c)?)),
        #[cfg(not(feature = "email"))]
        NotifierConfig::Email(_) => Err(BuildError::NotBuiltIn("email")),
    }
}

/// The path of a record's image, with the service's public address when it is configured.
pub fn image_url(public_url: Option<&str>, id: Uuid) -> String {
    let base = public_url.unwrap_or_default().trim_end_matches('/');
    format!("{base}/api/v1/submissions/{id}/image")
}

/// The notifiers of a running service and the outbox their events wait in.
pub struct Notifications {
    outbox: Arc<Outbox>,
    /// The events each notifier is sent, by name.
    wants: BTreeMap<String, Vec<EventKind>>,
    config: OutboxConfig,
    /// Wakes the delivery when letters are due now.
    due: tokio::sync::Notify,
    /// Letters waiting, as last measured and counted up since.
    waiting: AtomicUsize,
}

impl Notifications {
    pub async fn open(
        config: &OutboxConfig,
        queue: &QueueConfig,
        notifiers: &BTreeMap<String, NotifierConfig>,
    ) -> Result<Self, OutboxError> {
        Ok(Self {
            outbox: Arc::new(Outbox::open(config, queue).await?),
            wants: notifiers
                .iter()
                .map(|(name, n)| (name.clone(), n.events().to_vec()))
                .collect(),
            config: config.clone(),
            due: tokio::sync::Notify::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// The outbox's depth as measured now (the delivery measures it every few seconds).
    pub fn measured(&self, letters: usize) {
        self.waiting.store(letters, Ordering::Relaxed);
    }

    /// Resolves when letters were made due now by this process.
    pub fn due(&self) -> tokio::sync::futures::Notified<'_> {
        self.due.notified()
    }

    /// One letter of the event for each of `notify` that is sent events of its kind; the
    /// event's JSON is made only when some notifier wants it.
    fn letters(
        &self,
        notify: &[String],
        kind: EventKind,
        pipeline: &str,
        record: Option<Uuid>,
        event: impl FnOnce(Value) -> Value,
    ) -> Vec<Letter> {
        let wanted: Vec<&String> = notify
            .iter()
            .filter(|n| self.wants.get(*n).is_some_and(|k| k.contains(&kind)))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let (id, now) = (Uuid::now_v7(), Utc::now());
        let event = event(json!({
            "id": id,
            "type": kind.name(),
            "pipeline": pipeline,
            "occurred_at": now,
        }));
        wanted
            .into_iter()
            .map(|notifier| Letter {
                event_id: id,
                kind,
                pipeline: pipeline.to_owned(),
                record,
                notifier: notifier.clone(),
                created_at: now,
                attempts: 0,
                last_error: None,
                event: event.clone(),
            })
            .collect()
    }

    /// Writes the `record.stored` letters of a record about to be stored.
    pub async fn hold(&self, notify: &[String], record: &Record) -> Result<Held, OutboxError> {
        let url = image_url(self.config.public_url.as_deref(), record.id);
        let letters = self.letters(
            notify,
            EventKind::RecordStored,
            &record.pipeline,
            Some(record.id),
            |mut event| {
                event["record"] = json!(record);
                event["image_url"] = url.into();
                event
            },
        );
        if letters.is_empty() {
            return Ok(Held::default());
        }
        self.outbox.hold(letters).await
    }

    /// Every actor stored the record: its letters are due.
    pub async fn release(&self, held: Held) {
        if let Err(error) = self.outbox.release(held).await {
            tracing::error!(%error, "a held letter could not be released; it is settled later");
        }
        self.due.notify_one();
    }

    /// The record was not stored: its letters go.
    pub async fn discard(&self, held: Held) {
        if let Err(error) = self.outbox.discard(held).await {
            tracing::error!(%error, "held letters could not be removed; they are settled later");
        }
    }

    /// A submission was rejected: `submission.rejected` letters, due now. A failure to
    /// write them is logged; the rejection is answered all the same.
    pub async fn rejected(
        &self,
        notify: &[String],
        pipeline: &str,
        id: Option<Uuid>,
        labels: &Labels,
        violations: &[Violation],
    ) {
        if self.waiting.load(Ordering::Relaxed) >= self.config.max_letters {
            tracing::warn!(
                pipeline,
                "the outbox holds outbox.max_letters letters: a rejection is not told"
            );
            return;
        }
        let letters = self.letters(
            notify,
            EventKind::SubmissionRejected,
            pipeline,
            None,
            |mut event| {
                event["submission"] = json!({"id": id, "labels": labels, "violations": violations});
                event
            },
        );
        if letters.is_empty() {
            return;
        }
        let count = letters.len();
        match self.outbox.post(letters).await {
            Ok(()) => {
                self.waiting.fetch_add(count, Ordering::Relaxed);
                self.due.notify_one();
            }
            Err(error) => {
                tracing::error!(%error, pipeline, "a rejection's event could not be written to the outbox")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::WebhookConfig;

    fn webhook(events: Vec<EventKind>) -> NotifierConfig {
        NotifierConfig::Webhook(WebhookConfig {
            url: "http://127.0.0.1:9/".into(),
            secret: None,
            events,
            timeout: Duration::from_secs(1),
        })
    }

    /// `hook` hears of stored records, `audit` of rejections.
    async fn notifications(dir: &std::path::Path, max_letters: usize) -> Notifications {
        let config = OutboxConfig {
            dir: dir.to_path_buf(),
            max_letters,
            ..OutboxConfig::default()
        };
        let notifiers = BTreeMap::from([
            ("hook".to_owned(), webhook(vec![EventKind::RecordStored])),
            (
                "audit".to_owned(),
                webhook(vec![EventKind::SubmissionRejected]),
            ),
        ]);
        let queue = QueueConfig::default();
        Notifications::open(&config, &queue, &notifiers)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_rejection_goes_only_to_the_notifiers_that_ask_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let notifications = notifications(dir.path(), 10).await;
        let labels: Labels = serde_json::from_value(json!({"gtin": "007"})).unwrap();
        let both = ["hook".to_owned(), "audit".to_owned()];
        notifications
            .rejected(&both, "default", None, &labels, &[])
            .await;
        let taken = notifications
            .outbox()
            .take_due(10, Utc::now())
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        let letter = &taken[0].letter;
        assert_eq!(letter.notifier, "audit");
        assert_eq!(letter.kind, EventKind::SubmissionRejected);
        assert_eq!(letter.event["type"], "submission.rejected");
        assert_eq!(letter.event["id"], letter.event_id.to_string());
        assert_eq!(letter.event["submission"]["labels"]["gtin"], "007");
    }

    #[tokio::test]
    async fn rejections_are_not_told_once_the_outbox_holds_max_letters() {
        let dir = tempfile::tempdir().unwrap();
        let notifications = notifications(dir.path(), 2).await;
        let labels = Labels::new();
        let audit = ["audit".to_owned()];
        for _ in 0..5 {
            notifications
                .rejected(&audit, "default", None, &labels, &[])
                .await;
        }
        assert_eq!(notifications.outbox().depth().await.unwrap().letters, 2);
    }
}
