//! `[notifiers.<name>]` and `[outbox]`: who hears of stored records and rejected submissions,
//! and how events wait until they are delivered.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happened, as an event's `type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventKind {
    /// A record was stored by every actor of its pipeline (not sent again for a retry that
    /// finds it stored).
    #[serde(rename = "record.stored")]
    RecordStored,
    /// A submission's content was refused by a validator (422).
    #[serde(rename = "submission.rejected")]
    SubmissionRejected,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::RecordStored => "record.stored",
            Self::SubmissionRejected => "submission.rejected",
        }
    }
}

/// A system told of events: a pipeline lists it in `notify`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NotifierConfig {
    /// An HTTP POST of the event as JSON, signed as Standard Webhooks sign (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`),
    /// with the event id also as `Idempotency-Key`. A 2xx answer is delivered, 410 stops the
    /// event for good, anything else is tried again.
    Webhook(WebhookConfig),
    /// The event published to a RabbitMQ exchange with the routing key
    /// `<pipeline>.<event>`, persistent, confirmed by the broker (cargo feature `amqp`).
    Amqp(AmqpNotifierConfig),
    /// An email over SMTP naming the pipeline, the record, its labels and barcodes
    /// (cargo feature `email`).
    Email(EmailConfig),
}

impl NotifierConfig {
    /// The events this notifier is sent.
    pub fn events(&self) -> &[EventKind] {
        match self {
            Self::Webhook(c) => &c.events,
            Self::Amqp(c) => &c.events,
            Self::Email(c) => &c.events,
        }
    }
}

impl NotifierConfig {
    /// The longest one attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            Self::Webhook(c) => c.timeout,
            Self::Amqp(c) => c.timeout,
            Self::Email(c) => c.timeout,
        }
    }
}

fn default_events() -> Vec<EventKind> {
    vec![EventKind::RecordStored]
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (http or https). Redirects are not followed.
    pub url: String,
    /// The key of the signature (its UTF-8 bytes); unset, events are sent unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Events sent to this URL.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Time one attempt may take, connecting and answering included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmqpNotifierConfig {
    /// The broker, e.g. `amqp://user:password@rabbit:5672/%2f` (`amqps://` for TLS).
    pub url: String,
    /// The exchange events are published to; declared (durable, of type topic) when missing.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Events published.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Time connecting and the broker's confirmation may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
}

fn default_exchange() -> String {
    "librarian.events".into()
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: for a relay on the same host or network only.
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name.
    pub host: String,
    /// Unset: 587 with STARTTLS, 465 with TLS, 25 without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sender, e.g. `Librarian <librarian@example.org>`.
    pub from: String,
    /// Recipients of every message.
    #[serde(default)]
    pub to: Vec<String>,
    /// A label whose value (an address) also receives the message about its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_label: Option<String>,
    /// Events mailed.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Time one attempt may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
}

/// Where events wait until their notifiers have them: a folder on local disk, one file per
/// event and notifier, each written whole before it counts.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The outbox's folder; created when missing. Not used with `[queue] kind = "amqp"`.
    #[serde(default = "default_dir")]
    #[schemars(extend("format" = "path"))]
    pub dir: PathBuf,
    /// With `[queue] kind = "amqp"`, the outbox is this collection in the database of
    /// `queue.state`, shared by every API replica and worker on any host.
    #[serde(default = "default_collection")]
    pub collection: String,
    /// Attempts of one event before it is a dead letter (`librarian outbox list`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: NonZeroU32,
    /// The wait before the second attempt; each further one waits twice as long, with jitter.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub retry_delay: Duration,
    /// The longest wait between two attempts.
    #[serde(default = "default_max_retry_delay", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub max_retry_delay: Duration,
    /// Letters waiting at most for `submission.rejected` events to be added: a flood of
    /// rejected submissions cannot fill the disk (events of stored records are always kept).
    #[serde(default = "default_max_letters")]
    pub max_letters: usize,
    /// Deliveries under way at once, over all notifiers.
    #[serde(default = "default_concurrency")]
    pub concurrency: NonZeroU32,
    /// The service's address as its users reach it (`https://librarian.example.org`): events
    /// and emails link to the record's image with it; unset, they hold the path only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

fn default_dir() -> PathBuf {
    "outbox".into()
}
fn default_collection() -> String {
    "outbox".into()
}
fn default_max_attempts() -> NonZeroU32 {
    NonZeroU32::new(10).expect("not zero")
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_max_retry_delay() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_letters() -> usize {
    100_000
}
fn default_concurrency() -> NonZeroU32 {
    NonZeroU32::new(8).expect("not zero")
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            collection: default_collection(),
            max_attempts: default_max_attempts(),
            retry_delay: default_retry_delay(),
            max_retry_delay: default_max_retry_delay(),
            max_letters: default_max_letters(),
            concurrency: default_concurrency(),
            public_url: None,
        }
    }
}
