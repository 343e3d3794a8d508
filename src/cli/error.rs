//! What a command fails on: printed as `librarian: <error>` with exit status 1, the cause
//! kept as the error's source.

use std::path::PathBuf;

use crate::auth::tokens::TokenError;
use crate::config::ConfigError;
use crate::notify::outbox::OutboxError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("invalid configuration:\n{0}")]
    Config(#[source] ConfigError),
    #[error("cannot start: a store the configuration names is not usable:\n{0}")]
    Unavailable(#[source] ConfigError),
    #[error("cannot listen on {bind}: {source}")]
    Listen {
        bind: std::net::SocketAddr,
        #[source]
        source: Box<salvo::Error>,
    },
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("this process has no queue to work")]
    NoWorkers,
    #[error("some images could not be read")]
    ImagesUnread,
    #[error("--labels is not JSON: {0}")]
    LabelsNotJson(#[source] serde_json::Error),
    #[error("--labels must be a JSON object")]
    LabelsNotObject,
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("the server answered {0}")]
    Answered(ureq::http::StatusCode),
    #[error("no pipeline named `{unknown}`; this configuration has {known}")]
    UnknownPipeline { unknown: String, known: String },
    #[error("{0}")]
    Duration(#[source] chrono::OutOfRangeError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("no dead letter of event {0}: `librarian outbox list` shows them")]
    NoDeadLetter(uuid::Uuid),
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let error = CliError::File {
            path: "photo.jpg".into(),
            source: std::io::Error::other("gone"),
        };
        assert_eq!(error.to_string(), "photo.jpg: gone");
        assert_eq!(error.source().unwrap().to_string(), "gone");
    }
}
