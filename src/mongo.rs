//! The MongoDB database that every API replica and worker of an `amqp` queue shares: the
//! state of jobs and the outbox of notifications.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::config::queue::JobStateConfig;

/// Connects and checks that MongoDB answers within `timeout`.
pub async fn connect(
    config: &JobStateConfig,
    timeout: Duration,
) -> Result<Database, mongodb::error::Error> {
    let mut options = ClientOptions::parse(&config.uri).await?;
    options.connect_timeout = Some(timeout);
    options.server_selection_timeout = Some(timeout);
    options.app_name = Some("librarian".into());
    let db = Client::with_options(options)?.database(&config.database);
    db.run_command(doc! {"ping": 1}).await?;
    Ok(db)
}
