//! `librarian outbox list|retry`: the dead letters of the notifications' outbox. Letters move
//! between states atomically (files by rename, documents by one update each), so these
//! commands work beside running servers.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::error::CliError;
use crate::config::{Config, Overrides};
use crate::notify::outbox::Outbox;

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Every dead letter, one JSON line each: the event, its notifier, attempts, last error.
    List,
    /// Send dead letters again, their attempts counted from zero.
    Retry {
        /// Only the letters of this event (its `event_id`).
        #[arg(long, required_unless_present = "all")]
        event: Option<Uuid>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "event")]
        all: bool,
    },
}

pub fn run(config: Option<PathBuf>, command: OutboxCommand) -> Result<(), CliError> {
    super::runtime()?.block_on(run_with(config, command))
}

async fn run_with(config: Option<PathBuf>, command: OutboxCommand) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: config,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).map_err(CliError::Config)?;
    let outbox = Outbox::open(&loaded.config.outbox, &loaded.config.queue).await?;
    match command {
        OutboxCommand::List => {
            let dead = outbox.dead().await?;
            for letter in &dead {
                let line = json!({
                    "event_id": letter.event_id,
                    "type": letter.kind.name(),
                    "pipeline": letter.pipeline,
                    "record": letter.record,
                    "notifier": letter.notifier,
                    "created_at": letter.created_at,
                    "attempts": letter.attempts,
                    "last_error": letter.last_error,
                });
                println!("{line}");
            }
            eprintln!("{} dead letter(s) in {}", dead.len(), outbox.place());
        }
        OutboxCommand::Retry { event, .. } => {
            let count = outbox.revive(event, chrono::Utc::now()).await?;
            if let (0, Some(event)) = (count, event) {
                return Err(CliError::NoDeadLetter(event));
            }
            eprintln!("{count} dead letter(s) due again");
        }
    }
    Ok(())
}
