//! The `[auth]` section: who may submit and read, and how credentials are checked. Plain
//! config types, by which the `auth` module checks credentials.

use std::path::PathBuf;
use std::time::Duration;

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

/// What JWTs are verified with, as `algorithm` with `secret` or `public_key_file` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtKey {
    /// HS256 and its shared secret.
    Secret(String),
    /// RS256 or ES256 and the provider's public key (PEM), relative to the config file.
    PublicKeyFile {
        algorithm: PublicKeyAlgorithm,
        file: PathBuf,
    },
}

/// The algorithms that verify with a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKeyAlgorithm {
    RS256,
    ES256,
}

/// How JWTs are verified (`[auth.jwt]`), checked: a key that fits the algorithm.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "JwtFields", into = "JwtFields")]
pub struct JwtConfig {
    /// `None` until `secret` or `public_key_file` is given; `mode = "jwt"` needs one.
    pub key: Option<JwtKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub pipelines_claim: String,
}

/// How JWTs are verified (`[auth.jwt]`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JwtFields {
    #[serde(default)]
    algorithm: JwtAlgorithm,
    /// HS256: the shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// RS256 or ES256: the provider's public key, PEM, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    public_key_file: Option<PathBuf>,
    /// Required `iss`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// Required `aud`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    /// Clock difference allowed on `exp` and `nbf` (whole seconds).
    #[serde(default = "default_leeway", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    leeway: Duration,
    /// A claim listing the pipelines the token may submit to; absent means all.
    #[serde(default = "default_claim")]
    pipelines_claim: String,
}

/// `secret` or `public_key_file` given with an algorithm that takes the other, or both given.
#[derive(Debug, thiserror::Error)]
#[error("HS256 takes `secret`; RS256 and ES256 take `public_key_file`")]
pub struct KeyMismatch;

impl TryFrom<JwtFields> for JwtConfig {
    type Error = KeyMismatch;
    fn try_from(f: JwtFields) -> Result<Self, KeyMismatch> {
        let key = match (f.algorithm, f.secret, f.public_key_file) {
            (_, None, None) => None,
            (JwtAlgorithm::HS256, Some(secret), None) => Some(JwtKey::Secret(secret)),
            (JwtAlgorithm::RS256, None, Some(file)) => Some(JwtKey::PublicKeyFile {
                algorithm: PublicKeyAlgorithm::RS256,
                file,
            }),
            (JwtAlgorithm::ES256, None, Some(file)) => Some(JwtKey::PublicKeyFile {
                algorithm: PublicKeyAlgorithm::ES256,
                file,
            }),
            _ => return Err(KeyMismatch),
        };
        Ok(Self {
            key,
            issuer: f.issuer,
            audience: f.audience,
            leeway: f.leeway,
            pipelines_claim: f.pipelines_claim,
        })
    }
}

impl From<JwtConfig> for JwtFields {
    fn from(c: JwtConfig) -> Self {
        let (algorithm, secret, public_key_file) = match c.key {
            None => (JwtAlgorithm::default(), None, None),
            Some(JwtKey::Secret(secret)) => (JwtAlgorithm::HS256, Some(secret), None),
            Some(JwtKey::PublicKeyFile { algorithm, file }) => {
                let algorithm = match algorithm {
                    PublicKeyAlgorithm::RS256 => JwtAlgorithm::RS256,
                    PublicKeyAlgorithm::ES256 => JwtAlgorithm::ES256,
                };
                (algorithm, None, Some(file))
            }
        };
        Self {
            algorithm,
            secret,
            public_key_file,
            issuer: c.issuer,
            audience: c.audience,
            leeway: c.leeway,
            pipelines_claim: c.pipelines_claim,
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            key: None,
            issuer: None,
            audience: None,
            leeway: default_leeway(),
            pipelines_claim: default_claim(),
        }
    }
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_claim() -> String {
    "pipelines".into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(fields: serde_json::Value) -> Result<JwtConfig, serde_json::Error> {
        serde_json::from_value(fields)
    }

    #[test]
    fn a_key_is_read_with_the_algorithm_that_takes_it() {
        let secret = parse(json!({"secret": "s"})).unwrap();
        assert_eq!(secret.key, Some(JwtKey::Secret("s".into())));
        let es = parse(json!({"algorithm": "ES256", "public_key_file": "k.pem"})).unwrap();
        let expected = JwtKey::PublicKeyFile {
            algorithm: PublicKeyAlgorithm::ES256,
            file: "k.pem".into(),
        };
        assert_eq!(es.key, Some(expected));
        assert_eq!(parse(json!({})).unwrap().key, None);
        // Written back in the fields it was read from.
        let written = serde_json::to_value(&es).unwrap();
        assert_eq!(written["algorithm"], "ES256");
        assert_eq!(written["public_key_file"], "k.pem");
        assert_eq!(written["leeway"], "1m");
    }

    #[test]
    fn a_key_the_algorithm_does_not_take_is_refused() {
        for wrong in [
            json!({"algorithm": "RS256", "secret": "s"}),
            json!({"public_key_file": "k.pem"}),
            json!({"algorithm": "ES256", "secret": "s", "public_key_file": "k.pem"}),
        ] {
            let error = parse(wrong).unwrap_err().to_string();
            assert!(error.contains("HS256 takes `secret`"), "{error}");
        }
    }

    #[test]
    fn leeway_is_a_duration() {
        assert_eq!(
            parse(json!({"leeway": "5s"})).unwrap().leeway,
            Duration::from_secs(5)
        );
        assert!(parse(json!({"leeway_s": 5})).is_err());
        assert_eq!(JwtConfig::default().leeway, Duration::from_secs(60));
    }
}
