//! The `[auth]` section: who may submit and read, and how credentials are checked. Plain
//! config types, by which the `auth` module checks credentials.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone may call the API.
    #[default]
    None,
    /// Contributor tokens made with `librarian token create`.
    Tokens,
    /// JWTs from an identity provider (`[auth.jwt]`).
    Jwt,
}

/// Who may read a pipeline's records and images back (record, image and history routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    /// Anyone, without a credential.
    Public,
    /// Holders of a contributor token that names the pipeline (or all pipelines).
    Tokens,
    /// Holders of a JWT that names the pipeline (or all pipelines).
    Jwt,
    /// Nobody through the API (the records stay in the stores).
    Closed,
}

impl ReadAccess {
    /// What a pipeline's reads need when its config says nothing: the credential its
    /// submissions need; an open pipeline is not readable, so what crowds send stays private.
    pub(crate) fn following(submit: AuthMode) -> Self {
        match submit {
            AuthMode::None => Self::Closed,
            AuthMode::Tokens => Self::Tokens,
            AuthMode::Jwt => Self::Jwt,
        }
    }

    /// The credential scheme reads need; `None` when they need none or are never allowed.
    pub fn scheme(self) -> Option<AuthMode> {
        match self {
            Self::Public | Self::Closed => None,
            Self::Tokens => Some(AuthMode::Tokens),
            Self::Jwt => Some(AuthMode::Jwt),
        }
    }
}

/// `[auth]`: who may call the API.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub mode: AuthMode,
    /// Who may read records back (`public`, `tokens`, `jwt` or `closed`) in the pipelines
    /// that set neither their own `auth` nor `read`. Unset, a pipeline's reads need what its
    /// submissions need, and an open pipeline (`mode = "none"`) is `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ReadAccess>,
    /// Where `librarian token` keeps the tokens' hashes.
    #[serde(default = "default_token_file")]
    #[schemars(extend("format" = "path"))]
    pub token_file: PathBuf,
    #[serde(default)]
    pub jwt: JwtConfig,
}

fn default_token_file() -> PathBuf {
    "tokens.json".into()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            read: None,
            token_file: default_token_file(),
            jwt: JwtConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    RS256,
    ES256,
}

/// How JWTs are verified (`[auth.jwt]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// HS256: the shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// RS256 or ES256: the provider's public key, PEM, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Clock difference allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// A claim listing the pipelines the token may submit to; absent means all.
    #[serde(default = "default_claim")]
    pub pipelines_claim: String,
}

fn default_leeway() -> u64 {
    60
}
fn default_claim() -> String {
    "pipelines".into()
}
