//! Configuration: typed, layered with figment, checked as a whole before anything starts.
//!
//! Layers, later wins: built-in defaults < config file < `.env` < `LIBRARIAN_*` environment
//! variables (nesting with `__`) < command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Json, Serialized, Toml, Yaml};
use librarian_actors::{ActorConfig, DiskConfig, Reads};
use librarian_validators::{ImageRuleConfig, ValidatorConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::extract::{BarcodeExtractorConfig, ExtractorConfig};
use crate::privacy::KeepMetadata;
use auth::{AuthConfig, AuthMode, ReadAccess};
use notify::{NotifierConfig, OutboxConfig};
use queue::{QueueConfig, SubmitMode};

pub mod auth;
pub mod notify;
mod problems;
pub mod queue;
use problems::is_secret;

/// The name of the pipeline that always exists and that the plain routes use.
pub const DEFAULT_PIPELINE: &str = "default";

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    #[serde(default)]
    pub validators: BTreeMap<String, ValidatorConfig>,
    #[serde(default)]
    pub extractors: BTreeMap<String, ExtractorConfig>,
    #[serde(default)]
    pub actors: BTreeMap<String, ActorConfig>,
    #[serde(default)]
    pub notifiers: BTreeMap<String, NotifierConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    #[serde(default = "default_bind")]
    #[schemars(with = "String")]
    pub bind: SocketAddr,
    /// Largest request body, in bytes; larger ones are refused with 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser; `*` allows any.
    #[serde(default = "default_cors_origins")]
    pub cors_origins: Vec<String>,
    /// Images decoded and scanned at once; unset, one per CPU core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_workers: Option<NonZeroUsize>,
    /// Time one image may spend in decoding and extraction before it is given up.
    #[serde(default = "default_image_time_budget", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub image_time_budget: Duration,
    /// Submissions handled at once; more get 503 with Retry-After at once instead of
    /// queueing without bound. Unset, four per CPU core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<NonZeroUsize>,
    /// The largest labels object of a submission, as JSON bytes; larger ones get 413. Labels
    /// also nest at most 32 levels deep (422).
    #[serde(default = "default_max_label_bytes")]
    pub max_label_bytes: usize,
    /// Uploads being received at once (bodies still arriving); more get 503 at once. Unset,
    /// sixteen per CPU core. A stalled upload holds one of these, never a submission slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uploads: Option<NonZeroUsize>,
    /// Time a client has to send its body; every `min_body_rate` bytes received add one
    /// second. Slower uploads get 408.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub body_timeout: Duration,
    /// Bytes per second a client must keep sending once `body_timeout` has passed.
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: u32,
    /// Memory for decoded pixels, in bytes, shared by all image workers: an image waits until
    /// its share is free, and one that needs more than all of it is refused (422).
    #[serde(default = "default_decode_memory_bytes")]
    pub decode_memory_bytes: u64,
    /// On SIGTERM or Ctrl-C, how long submissions in flight may take to finish.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub shutdown_timeout: Duration,
    /// Where leftovers of a failed all-or-nothing store are listed (`librarian orphans`).
    #[serde(default = "default_orphans_file")]
    #[schemars(extend("format" = "path"))]
    pub orphans_file: PathBuf,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    25 * 1024 * 1024
}
fn default_cors_origins() -> Vec<String> {
    vec!["*".into()]
}
fn default_image_time_budget() -> Duration {
    Duration::from_secs(10)
}
fn default_max_label_bytes() -> usize {
    64 * 1024
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_min_body_rate() -> u32 {
    4096
}
fn default_decode_memory_bytes() -> u64 {
    384 << 20
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_orphans_file() -> PathBuf {
    "orphans.jsonl".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_body_bytes: default_max_body_bytes(),
            cors_origins: default_cors_origins(),
            image_workers: None,
            image_time_budget: default_image_time_budget(),
            max_in_flight: None,
            max_label_bytes: default_max_label_bytes(),
            max_uploads: None,
            body_timeout: default_body_timeout(),
            min_body_rate: default_min_body_rate(),
            decode_memory_bytes: default_decode_memory_bytes(),
            shutdown_timeout: default_shutdown_timeout(),
            orphans_file: default_orphans_file(),
        }
    }
}

/// Submissions allowed per client (bearer token, else IP address) before 429.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate per client; unset, submissions are not rate limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<NonZeroU32>,
    /// Submissions a client may send at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: NonZeroU32,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the client; from any other
    /// address the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// A pipeline's own rate, replacing the global one.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Unset (`rate_limit = {}`), this pipeline is not rate limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<NonZeroU32>,
    #[serde(default = "default_burst")]
    pub burst: NonZeroU32,
}

fn default_burst() -> NonZeroU32 {
    NonZeroU32::new(10).expect("10 is not zero")
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: None,
            burst: default_burst(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A named route through the service: which components, in order.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Validators by name; they run cheapest first (labels, image header, extracted facts).
    #[serde(default)]
    pub validators: Vec<String>,
    /// Extractors by name, run on the one decoded image.
    #[serde(default)]
    pub extractors: Vec<String>,
    /// Actors by name, in storing order; a record is stored by all of them or by none.
    #[serde(default)]
    pub actors: Vec<String>,
    /// Notifiers by name, told of this pipeline's events through the outbox.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Name of the image field in JSON and multipart bodies.
    #[serde(default = "default_image_field")]
    pub image_field: String,
    /// Name of the labels field in JSON and multipart bodies.
    #[serde(default = "default_labels_field")]
    pub labels_field: String,
    /// Remove EXIF (but the orientation), XMP, IPTC and comments from stored JPEG, PNG and
    /// WebP files, without re-encoding pixels; the record lists what was removed.
    #[serde(default)]
    pub strip_metadata: bool,
    /// With `strip_metadata`: facts to keep in the record (`capture_time`).
    #[serde(default)]
    pub keep_metadata: Vec<KeepMetadata>,
    /// This pipeline's authentication instead of `[auth] mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Who may read this pipeline's records back instead of `[auth] read`: `public`,
    /// `tokens`, `jwt` or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ReadAccess>,
    /// This pipeline's rate limit instead of `[rate_limit]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<QuotaConfig>,
    /// `async`: every submission is queued and answered 202 with its job, as if sent with
    /// `Prefer: respond-async`.
    #[serde(default)]
    pub mode: SubmitMode,
    /// The contributor page sends photos larger than this asynchronously (`Prefer:
    /// respond-async`) and shows their progress live, when the pipeline's records are readable
    /// to the sender; unset, only in `mode = "async"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_above_bytes: Option<u64>,
    /// How a job fetches a photo sent as `image_url` in a JSON body.
    #[serde(default)]
    pub fetch: queue::FetchConfig,
}

fn default_image_field() -> String {
    "image".into()
}
fn default_labels_field() -> String {
    "labels".into()
}

/// Values given on the command line; they override every other layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// Read no `LIBRARIAN_*` variable: for callers, such as tests, whose configuration must
    /// not depend on the environment they happen to run in.
    pub ignore_environment: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("config file {0}: use a .toml, .yaml, .yml or .json file")]
    UnknownFileType(PathBuf),
    #[error("{key}: {reason}")]
    Key { key: String, reason: String },
    /// A well-formed section whose component cannot be made from it.
    #[error("{key}: {source}")]
    Component {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("actors.{actor}: {source}")]
    Unavailable {
        actor: String,
        #[source]
        source: librarian_actors::BuildError,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// One problem as itself, several as `Many`.
    pub fn many(mut problems: Vec<ConfigError>) -> Self {
        match problems.len() {
            1 => problems.remove(0),
            _ => Self::Many(problems),
        }
    }

    /// Whether the configuration is right and only servers it names did not answer.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Many(all) => all.iter().all(Self::is_unavailable),
            _ => false,
        }
    }

    pub fn component(
        key: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Component {
            key: key.into(),
            source: Box::new(source),
        }
    }

    pub fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Key {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A loaded config and the folder its relative paths are read from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub base_dir: PathBuf,
}

impl Config {
    /// Whether credentials of `mode` are checked anywhere: the global `[auth] mode` or
    /// `read`, or some pipeline's own.
    pub fn uses_auth(&self, mode: AuthMode) -> bool {
        let reads = |read: Option<ReadAccess>| read.and_then(ReadAccess::scheme) == Some(mode);
        self.auth.mode == mode
            || reads(self.auth.read)
            || self
                .pipelines
                .values()
                .any(|p| p.auth == Some(mode) || reads(p.read))
    }

    /// Reads every layer. `.env` must already be in the process environment.
    pub fn load(overrides: &Overrides) -> Result<Loaded, ConfigError> {
        let file = overrides
            .config_file
            .clone()
            .or_else(|| {
                let named = std::env::var_os("LIBRARIAN_CONFIG").map(PathBuf::from);
                named.filter(|_| !overrides.ignore_environment)
            })
            .map(|f| {
                f.exists()
                    .then_some(f.clone())
                    .ok_or(ConfigError::MissingFile(f))
            })
            .transpose()?
            .or_else(|| Some(PathBuf::from("librarian.toml")).filter(|f| f.exists()));
        let mut figment = Figment::new();
        if let Some(file) = &file {
            figment = match file.extension().and_then(|e| e.to_str()) {
                Some("toml") => figment.merge(Toml::file_exact(file)),
                Some("yaml" | "yml") => figment.merge(Yaml::file_exact(file)),
                Some("json") => figment.merge(Json::file_exact(file)),
                _ => return Err(ConfigError::UnknownFileType(file.clone())),
            };
        }
        if !overrides.ignore_environment {
            figment = with_environment(figment);
        }
        if let Some(bind) = &overrides.bind {
            figment = figment.merge(Serialized::default("server.bind", bind));
        }
        figment = with_builtins(figment)?;
        let mut config = problems::extract(&figment)?;
        let base_dir = file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        config.resolve_paths(&base_dir);
        // A path on the command line is the shell's: from the working directory.
        if let Some(dir) = &overrides.data_dir {
            match config.actors.get_mut("disk") {
                Some(ActorConfig::Disk(disk)) => disk.dir = dir.clone(),
                _ => {
                    return Err(ConfigError::key(
                        "actors.disk",
                        "--data-dir needs the disk actor named `disk`",
                    ));
                }
            }
        }
        config.check()?;
        Ok(Loaded { config, base_dir })
    }

    /// The one rule for relative paths, whichever layer set them: from the config file's
    /// folder, or the working directory when there is no config file. The disk folders and
    /// the orphans file are resolved here; the files components read (schemas, tokens, keys,
    /// CA certificates) by their builders, from [`Loaded::base_dir`].
    fn resolve_paths(&mut self, base_dir: &Path) {
        for actor in self.actors.values_mut() {
            if let ActorConfig::Disk(disk) = actor {
                disk.dir = base_dir.join(&disk.dir);
            }
        }
        self.server.orphans_file = base_dir.join(&self.server.orphans_file);
        if let QueueConfig::Local(local) = &mut self.queue {
            local.file = base_dir.join(&local.file);
        }
        self.outbox.dir = base_dir.join(&self.outbox.dir);
    }

    /// The built-in components `photo` (a permissive image validator), `barcode` and `disk`,
    /// and the `default` pipeline made of them.
    pub fn builtin() -> Self {
        let mut config = Self::default();
        config.validators.insert(
            "photo".into(),
            ValidatorConfig::Image(ImageRuleConfig {
                max_pixels: Some(100_000_000),
                ..Default::default()
            }),
        );
        config.extractors.insert(
            "barcode".into(),
            ExtractorConfig::Barcode(BarcodeExtractorConfig::default()),
        );
        config
            .actors
            .insert("disk".into(), ActorConfig::Disk(DiskConfig::default()));
        config.pipelines.insert(
            DEFAULT_PIPELINE.into(),
            PipelineConfig {
                validators: vec!["photo".into()],
                extractors: vec!["barcode".into()],
                actors: vec!["disk".into()],
                notify: Vec::new(),
                image_field: default_image_field(),
                labels_field: default_labels_field(),
                rate_limit: None,
                auth: None,
                read: None,
                strip_metadata: false,
                keep_metadata: Vec::new(),
                mode: SubmitMode::Sync,
                async_above_bytes: None,
                fetch: Default::default(),
            },
        );
        config
    }

    /// Cross-field checks: every problem is reported, each with its key.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.max_body_bytes == 0 {
            problems.push(ConfigError::key(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.server.image_time_budget.is_zero() {
            problems.push(ConfigError::key(
                "server.image_time_budget",
                "must be longer than 0s",
            ));
        }
        for name in self.notifiers.keys().filter(|n| !plain_name(n)) {
            problems.push(ConfigError::key(
                format!("notifiers.{name}"),
                "a notifier name may hold only letters, digits, `-` and `_` (it names files of the outbox)",
            ));
        }
        for (name, pipeline) in &self.pipelines {
            let key = format!("pipelines.{name}");
            if !plain_name(name) {
                problems.push(ConfigError::key(
                    &key,
                    "a pipeline name may hold only letters, digits, `-` and `_`",
                ));
            }
            if pipeline.actors.is_empty() {
                problems.push(ConfigError::key(
                    format!("{key}.actors"),
                    "a pipeline needs at least one actor",
                ));
            }
            if pipeline.image_field.is_empty() || pipeline.image_field == pipeline.labels_field {
                problems.push(ConfigError::key(
                    format!("{key}.image_field"),
                    "must be non-empty and differ from labels_field",
                ));
            }
            let mut missing = |list: &[String], kind: &str, known: &dyn Fn(&str) -> bool| {
                let field = match kind {
                    "notifier" => "notify".to_owned(),
                    _ => format!("{kind}s"),
                };
                for (i, component) in list.iter().enumerate() {
                    if !known(component) {
                        problems.push(ConfigError::key(
                            format!("{key}.{field}[{i}]"),
                            format!("no {kind} named `{component}` is configured"),
                        ));
                    }
                }
            };
            missing(&pipeline.validators, "validator", &|n| {
                self.validators.contains_key(n)
            });
            missing(&pipeline.extractors, "extractor", &|n| {
                self.extractors.contains_key(n)
            });
            missing(&pipeline.actors, "actor", &|n| self.actors.contains_key(n));
            missing(&pipeline.notify, "notifier", &|n| {
                self.notifiers.contains_key(n)
            });
            problems.extend(self.unreadable(&key, pipeline));
        }
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Many(problems)),
        }
    }

    /// What a pipeline's actors cannot read back, though every record answered 201 must be
    /// readable with its image. (History is optional: without it, pages are empty.)
    fn unreadable(&self, key: &str, pipeline: &PipelineConfig) -> Vec<ConfigError> {
        let reads: Vec<Reads> = pipeline
            .actors
            .iter()
            .filter_map(|n| self.actors.get(n).map(ActorConfig::reads))
            .collect();
        if reads.is_empty() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if !reads.iter().any(|r| r.records) {
            problems.push(ConfigError::key(
                format!("{key}.actors"),
                "no actor of this pipeline reads records back: add a disk or mongo actor, or set \
                 record_json = true on the s3 actor",
            ));
        }
        if !reads.iter().any(|r| r.images) {
            problems.push(ConfigError::key(
                format!("{key}.actors"),
                "no actor of this pipeline keeps the photos: a mongo actor with image = \"none\" \
                 needs an s3 or disk actor beside it",
            ));
        }
        problems
    }

    /// The effective config as JSON with secrets replaced, for `config check`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        redact(&mut value);
        value
    }
}

/// A name that is safe in URLs and file names: letters, digits, `-` and `_`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Merges the `LIBRARIAN_*` variables. figment reads each value as TOML-like text: lists
/// (`[…]`) and its own `{key=value}` tables, but not a JSON object, the form schemas and other
/// tables are written in; and a secret of digits (or `true`) would become a number, its
/// leading zeros lost. A JSON object is merged as JSON at its key, a secret as the text sent.
fn with_environment(figment: Figment) -> Figment {
    let env = Env::prefixed("LIBRARIAN_").split("__").ignore(&["config"]);
    let mut exact: Vec<(String, serde_json::Value)> = Vec::new();
    for (key, value) in env.iter() {
        let key = key.as_str().to_ascii_lowercase();
        let name = key.rsplit('.').next().unwrap_or_default();
        if is_secret(name) {
            exact.push((key, value.into()));
        } else if value.trim_start().starts_with('{')
            && let Ok(object @ serde_json::Value::Object(_)) = serde_json::from_str(&value)
        {
            exact.push((key, object));
        }
    }
    let keys: Vec<String> = exact.iter().map(|(key, _)| key.clone()).collect();
    let mut figment = figment.merge(env.filter(move |key| !keys.iter().any(|k| key == k.as_str())));
    for (key, value) in exact {
        figment = figment.merge(Serialized::default(&key, value));
    }
    figment
}

/// Adds each built-in component and the built-in `default` pipeline beneath the user's
/// layers. An entry the user gave a `kind` is entirely the user's; an entry without one (say,
/// only `LIBRARIAN_ACTORS__DISK__DIR`) keeps the built-in kind and other settings.
fn with_builtins(mut figment: Figment) -> Result<Figment, ConfigError> {
    let given: serde_json::Value = figment
        .extract()
        .map_err(|e| ConfigError::many(problems::describe(e)))?;
    let builtin = serde_json::to_value(Config::builtin()).unwrap_or_default();
    for section in ["validators", "extractors", "actors", "pipelines"] {
        for (name, value) in builtin[section].as_object().into_iter().flatten() {
            let entry = &given[section][name];
            if section == "pipelines" || entry.get("kind").is_none() {
                figment = figment.join(Serialized::default(&format!("{section}.{name}"), value));
            }
        }
    }
    Ok(figment)
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret(key) && !v.is_null() {
                    *v = "<redacted>".into();
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        serde_json::Value::String(s) => *s = redact_url_password(s),
        _ => {}
    }
}

/// `scheme://user:password@host` becomes `scheme://user:<redacted>@host`.
fn redact_url_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://").map(|i| i + 3) else {
        return s.to_owned();
    };
    let rest = &s[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:<redacted>{}",
                &s[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => s.to_owned(),
        },
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_keys_and_url_passwords() {
        let mut v = serde_json::json!({"a": {"secret_key": "k", "uri": "mongodb://u:p@h:1/db", "bucket": "b"}});
        redact(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": {"secret_key": "<redacted>", "uri": "mongodb://u:<redacted>@h:1/db", "bucket": "b"}})
        );
    }

    #[test]
    fn a_missing_component_is_named_with_its_key() {
        let mut config = Config::builtin();
        config
            .pipelines
            .get_mut("default")
            .unwrap()
            .validators
            .push("nope".into());
        let message = config.check().unwrap_err().to_string();
        assert_eq!(
            message,
            "pipelines.default.validators[1]: no validator named `nope` is configured"
        );
    }
}
