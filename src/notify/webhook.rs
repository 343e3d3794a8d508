//! `kind = "webhook"`: the event POSTed as JSON, signed the way Standard Webhooks
//! (standardwebhooks.com) sign, which receivers' libraries already verify.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{BuildError, DeliveryError, Notifier};
use crate::config::notify::WebhookConfig;

pub struct Webhook {
    url: String,
    secret: Option<Vec<u8>>,
    agent: ureq::Agent,
    timeout: std::time::Duration,
}

impl Webhook {
    pub fn new(config: &WebhookConfig) -> Result<Self, BuildError> {
        let scheme = config.url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https")) {
            return Err(BuildError::Url(format!(
                "`{}` is not an http:// or https:// URL",
                config.url
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            url: config.url.clone(),
            secret: config.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            agent,
            timeout: config.timeout,
        })
    }
}

/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Notifier for Webhook {
    async fn deliver(&self, event: &Value) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(event).expect("an event serializes");
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("librarian/", env!("CARGO_PKG_VERSION")),
            )
            .header("idempotency-key", &id)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(secret) = &self.secret {
            request = request.header(
                "webhook-signature",
                signature(secret, &id, timestamp, &body),
            );
        }
        let timeout = self.timeout;
        let sent = tokio::task::spawn_blocking(move || request.send(&body[..]))
            .await
            .map_err(|joined| DeliveryError::transport("the sending task")(Box::new(joined)))?;
        let status = match sent {
            Ok(response) => response.status().as_u16(),
            Err(ureq::Error::Timeout(_)) => return Err(DeliveryError::Timeout(timeout)),
            Err(error) => return Err(DeliveryError::transport("the request")(Box::new(error))),
        };
        match status {
            200..=299 => Ok(()),
            410 => Err(DeliveryError::Gone),
            other => Err(DeliveryError::Status(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification: its key (base64 after `whsec_`),
    /// id, timestamp and body give its signature.
    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused() {
        let config = WebhookConfig {
            url: "file:///etc/passwd".into(),
            secret: None,
            events: Vec::new(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert!(matches!(Webhook::new(&config), Err(BuildError::Url(_))));
    }
}
