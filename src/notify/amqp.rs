//! `kind = "amqp"`: the event published to a RabbitMQ topic exchange with the routing key
//! `<pipeline>.<event>` (so a consumer binds `products.record.stored`, or `*.record.stored`),
//! persistent, and confirmed by the broker before it counts as delivered.

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{DeliveryError, Notifier};
use crate::config::notify::AmqpNotifierConfig;

/// The connection is made at the first event, and again after the broker went away: a
/// broker that is down delays events, it never stops the service from starting.
pub struct AmqpNotifier {
    config: AmqpNotifierConfig,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpNotifier {
    pub fn new(config: &AmqpNotifierConfig) -> Self {
        Self {
            config: config.clone(),
            link: Mutex::default(),
        }
    }

    async fn channel(&self) -> Result<Channel, DeliveryError> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *link = None;
        let failed = |what| move |e: lapin::Error| DeliveryError::transport(what)(Box::new(e));
        let connect = Connection::connect(&self.config.url, ConnectionProperties::default());
        let connection = tokio::time::timeout(self.config.timeout, connect)
            .await
            .map_err(|_| DeliveryError::Timeout(self.config.timeout))?
            .map_err(failed("connecting to the broker"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(failed("opening a channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(failed("asking for confirmations"))?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(failed("declaring the exchange"))?;
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }
}

#[async_trait]
impl Notifier for AmqpNotifier {
    async fn deliver(&self, event: &Value) -> Result<(), DeliveryError> {
        let channel = self.channel().await?;
        let text = |field: &str| event[field].as_str().unwrap_or_default().to_owned();
        let routing_key = format!("{}.{}", text("pipeline"), text("type"));
        let body = serde_json::to_vec(event).expect("an event serializes");
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(text("id").into());
        let failed = |what| move |e: lapin::Error| DeliveryError::transport(what)(Box::new(e));
        let confirmed = async {
            let confirm = channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await
                .map_err(failed("publishing"))?;
            confirm.await.map_err(failed("the broker's confirmation"))
        };
        let confirmation = tokio::time::timeout(self.config.timeout, confirmed)
            .await
            .map_err(|_| DeliveryError::Timeout(self.config.timeout))??;
        match confirmation.is_ack() {
            true => Ok(()),
            false => Err(DeliveryError::Nacked),
        }
    }
}
