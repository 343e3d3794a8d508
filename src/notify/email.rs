//! `kind = "email"`: a short plain-text message over SMTP (lettre) naming the pipeline, the
//! record, its labels and barcodes, with a link to the photo when `outbox.public_url` is set.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{BuildError, DeliveryError, Notifier};
use crate::config::notify::{EmailConfig, SmtpSecurity};

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    to_label: Option<String>,
}

impl Email {
    pub fn new(config: &EmailConfig) -> Result<Self, BuildError> {
        type Smtp = AsyncSmtpTransport<Tokio1Executor>;
        let host = config.host.as_str();
        let (builder, port) = match config.security {
            SmtpSecurity::Starttls => (Smtp::starttls_relay(host).map_err(BuildError::Smtp)?, 587),
            SmtpSecurity::Tls => (Smtp::relay(host).map_err(BuildError::Smtp)?, 465),
            SmtpSecurity::None => (Smtp::builder_dangerous(host), 25),
        };
        let mut builder = builder
            .port(config.port.unwrap_or(port))
            .timeout(Some(config.timeout));
        if let Some(username) = &config.username {
            let password = config.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let address = |field| move |source| BuildError::Address { field, source };
        Ok(Self {
            transport: builder.build(),
            from: config.from.parse().map_err(address("from"))?,
            to: config
                .to
                .iter()
                .map(|to| to.parse())
                .collect::<Result<_, _>>()
                .map_err(address("to"))?,
            to_label: config.to_label.clone(),
        })
    }

    /// The configured recipients, and the address in the label the config names when it is
    /// one (a label that holds no address is left out, with a warning).
    fn recipients(&self, event: &Value) -> Vec<Mailbox> {
        let mut recipients = self.to.clone();
        let labels = match event["type"].as_str() {
            Some("record.stored") => &event["record"]["labels"],
            _ => &event["submission"]["labels"],
        };
        if let Some(label) = &self.to_label
            && let Some(text) = labels[label].as_str()
        {
            match text.parse::<Mailbox>() {
                Ok(mailbox) => recipients.push(mailbox),
                Err(error) => {
                    tracing::warn!(%label, %error, "the recipient label holds no email address")
                }
            }
        }
        recipients
    }
}

/// The subject and text of an event's message.
fn message_text(event: &Value) -> (String, String) {
    let pipeline = event["pipeline"].as_str().unwrap_or_default();
    let mut text = String::new();
    let mut line = |l: String| {
        text.push_str(&l);
        text.push('\n');
    };
    let list = |value: &Value| -> Vec<String> {
        match value {
            Value::Object(map) => map.iter().map(|(k, v)| format!("  {k}: {v}")).collect(),
            _ => Vec::new(),
        }
    };
    let subject = match event["type"].as_str() {
        Some("record.stored") => {
            let record = &event["record"];
            let id = record["id"].as_str().unwrap_or_default();
            line(format!(
                "A record was stored in the pipeline `{pipeline}`.\n"
            ));
            line(format!("Record:   {id}"));
            line(format!(
                "Received: {}",
                record["received_at"].as_str().unwrap_or_default()
            ));
            line(format!(
                "Photo:    {}",
                event["image_url"].as_str().unwrap_or_default()
            ));
            line("Labels:".into());
            list(&record["labels"]).into_iter().for_each(&mut line);
            line("Barcodes:".into());
            for barcode in record["barcodes"].as_array().into_iter().flatten() {
                let format = barcode["format"].as_str().unwrap_or_default();
                line(format!("  {format} {}", barcode["text"]));
            }
            format!("Librarian: record {id} stored in {pipeline}")
        }
        _ => {
            let submission = &event["submission"];
            line(format!(
                "A submission to the pipeline `{pipeline}` was rejected.\n"
            ));
            line(format!("Submission: {}", submission["id"]));
            line("Labels:".into());
            list(&submission["labels"]).into_iter().for_each(&mut line);
            line("Findings:".into());
            for finding in submission["violations"].as_array().into_iter().flatten() {
                line(format!("  {finding}"));
            }
            format!("Librarian: a submission to {pipeline} was rejected")
        }
    };
    (subject, text)
}

#[async_trait]
impl Notifier for Email {
    async fn deliver(&self, event: &Value) -> Result<(), DeliveryError> {
        let recipients = self.recipients(event);
        if recipients.is_empty() {
            return Ok(());
        }
        let (subject, text) = message_text(event);
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for to in recipients {
            message = message.to(to);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| DeliveryError::transport("the message")(Box::new(e)))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(DeliveryError::Rejected(Box::new(error))),
            Err(error) => Err(DeliveryError::transport("the SMTP server")(Box::new(error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_record_is_told_with_its_labels_and_barcodes() {
        let event = serde_json::json!({
            "type": "record.stored",
            "pipeline": "products",
            "image_url": "https://l.example/api/v1/submissions/r1/image",
            "record": {"id": "r1", "received_at": "2026-12-01T10:00:00Z",
                "labels": {"gtin": "0012345678905"},
                "barcodes": [{"format": "EAN_13", "text": "4006381333931"}]},
        });
        let (subject, text) = message_text(&event);
        assert_eq!(subject, "Librarian: record r1 stored in products");
        assert!(text.contains("Record:   r1"), "{text}");
        assert!(text.contains("  gtin: \"0012345678905\""), "{text}");
        assert!(text.contains("  EAN_13 \"4006381333931\""), "{text}");
        assert!(
            text.contains("https://l.example/api/v1/submissions/r1/image"),
            "{text}"
        );
    }
}
