//! Every mistake of a configuration at once, each named by the key as the user wrote it, and
//! never with the value of a secret.

use figment::Figment;
use figment::error::Kind;
use serde::de::DeserializeOwned;

use librarian_actors::ActorConfig;
use librarian_validators::ValidatorConfig;

use super::auth::AuthConfig;
use super::{Config, ConfigError, PipelineConfig, RateLimitConfig, ServerConfig};
use crate::extract::ExtractorConfig;

/// Words that make a key a secret: its value is never shown.
pub const SECRET_WORDS: [&str; 5] = ["secret", "password", "token", "access_key", "private_key"];

pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// The config, or every problem of it: each section and each named component is read on its
/// own, so one mistake does not hide the next (serde stops at the first).
pub fn extract(figment: &Figment) -> Result<Config, ConfigError> {
    let first = match figment.extract::<Config>() {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let given: serde_json::Value = figment.extract().unwrap_or_default();
    let mut problems = Vec::new();
    type Reader = fn(&Figment, &str) -> Vec<ConfigError>;
    fn read<T: DeserializeOwned>(figment: &Figment, key: &str) -> Vec<ConfigError> {
        match figment.extract_inner::<T>(key) {
            Ok(_) => Vec::new(),
            Err(e) => describe_within(e, key),
        }
    }
    for (section, reader) in [
        ("server", read::<ServerConfig> as Reader),
        ("rate_limit", read::<RateLimitConfig>),
        ("auth", read::<AuthConfig>),
    ] {
        if given.get(section).is_some() {
            problems.extend(reader(figment, section));
        }
    }
    for (section, reader) in [
        ("pipelines", read::<PipelineConfig> as Reader),
        ("validators", read::<ValidatorConfig>),
        ("extractors", read::<ExtractorConfig>),
        ("actors", read::<ActorConfig>),
    ] {
        for name in given[section]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            problems.extend(reader(figment, &format!("{section}.{name}")));
        }
    }
    // Whatever the parts do not show (a key no section has) is in the whole's own error.
    if problems.is_empty() {
        problems = describe(first);
    }
    Err(ConfigError::many(problems))
}

/// One problem per error figment chained, named by its key path (without figment's profile,
/// which reads like a pipeline's name), the value left out when the key is a secret.
pub fn describe(error: figment::Error) -> Vec<ConfigError> {
    describe_within(error, "")
}

/// As [`describe`], for an error of the part of the config at `within` (`validators.photo`):
/// figment puts that part's path after the path inside it; the key is said in reading order.
fn describe_within(error: figment::Error, within: &str) -> Vec<ConfigError> {
    let outer: Vec<&str> = within.split('.').filter(|p| !p.is_empty()).collect();
    error
        .into_iter()
        .map(|e| {
            let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            let inner = match path.strip_suffix(outer.as_slice()) {
                Some(inner) => inner,
                None => path.strip_prefix(outer.as_slice()).unwrap_or(&path),
            };
            let key = outer
                .iter()
                .chain(inner)
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            let reason = match &e.kind {
                Kind::InvalidType(_, expected) if is_secret(&key) => {
                    format!("invalid type: expected {expected}")
                }
                Kind::InvalidValue(_, expected) if is_secret(&key) => {
                    format!("invalid value: expected {expected}")
                }
                Kind::Message(_) if is_secret(&key) => "invalid value".to_owned(),
                kind => kind.to_string(),
            };
            let reason = match e.metadata.as_ref().map(|m| &m.name) {
                Some(source) => format!("{reason} (in the {source})"),
                None => reason,
            };
            match key.is_empty() {
                true => ConfigError::key("config", reason),
                false => ConfigError::key(key, reason),
            }
        })
        .collect()
}
