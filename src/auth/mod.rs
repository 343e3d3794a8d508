//! Authentication of API calls: none (open crowdsourcing), contributor tokens, or JWTs from an
//! identity provider; globally with a per-pipeline override.

mod jwt;
pub mod tokens;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use jwt::JwtVerifier;
pub use jwt::{JwtAlgorithm, JwtConfig};
pub use tokens::Refusal;
use tokens::TokenStore;

use crate::config::{ConfigError, Loaded};

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

/// `[auth]`: who may call the API.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub mode: AuthMode,
    /// Where `librarian token` keeps the tokens' hashes.
    #[serde(default = "default_token_file")]
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
            token_file: default_token_file(),
            jwt: JwtConfig::default(),
        }
    }
}

/// Who is calling, as far as the bearer credential tells.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No credential (or none is checked anywhere in this configuration).
    Anonymous,
    Principal(Principal),
    /// A credential was sent and refused; on an open pipeline the caller is anonymous.
    Refused(Refusal),
}

/// A verified caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// How it was verified: `Tokens` or `Jwt`.
    pub scheme: AuthMode,
    /// A stable, non-secret key for rate limits and logs: `token:<id>` or `jwt:<subject>`.
    pub key: String,
    /// The pipelines it may use; `None` means all.
    pub pipelines: Option<Vec<String>>,
}

/// Why a caller may not use a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credential was sent to a pipeline that needs one.
    Required,
    /// The credential is not valid for this pipeline.
    Refused(Refusal),
    /// A valid credential that does not name this pipeline.
    Forbidden,
}

/// Authentication (who calls) and authorization (what a caller may do with a pipeline), for
/// the pipelines' modes: the global `[auth] mode` with a per-pipeline override.
pub struct Auth {
    modes: HashMap<String, AuthMode>,
    default_mode: AuthMode,
    tokens: Option<Arc<TokenStore>>,
    jwt: Option<Arc<JwtVerifier>>,
}

impl Auth {
    pub fn new(loaded: &Loaded) -> Result<Self, ConfigError> {
        let config = &loaded.config;
        let modes: HashMap<String, AuthMode> = config
            .pipelines
            .iter()
            .map(|(name, p)| (name.clone(), p.auth.unwrap_or(config.auth.mode)))
            .collect();
        let tokens = config.uses_auth(AuthMode::Tokens).then(|| {
            Arc::new(TokenStore::new(
                loaded.base_dir.join(&config.auth.token_file),
            ))
        });
        let jwt = match config.uses_auth(AuthMode::Jwt) {
            true => Some(Arc::new(
                JwtVerifier::new(&config.auth.jwt, &loaded.base_dir)
                    .map_err(|e| ConfigError::key("auth.jwt", e))?,
            )),
            false => None,
        };
        Ok(Self {
            modes,
            default_mode: config.auth.mode,
            tokens,
            jwt,
        })
    }

    /// Verifies a bearer credential: a contributor token (`lib_…`) when tokens are used, else
    /// a JWT when JWTs are. Without either in the configuration nothing is checked.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Caller {
        let Some(bearer) = bearer else {
            return Caller::Anonymous;
        };
        let tokens = self
            .tokens
            .as_ref()
            .filter(|_| bearer.starts_with("lib_") || self.jwt.is_none());
        let verified = if let Some(tokens) = tokens {
            tokens.authenticate(bearer).await.map(|t| Principal {
                scheme: AuthMode::Tokens,
                key: format!("token:{}", t.id),
                pipelines: (!t.pipelines.is_empty()).then_some(t.pipelines),
            })
        } else if let Some(jwt) = &self.jwt {
            jwt.authenticate(bearer)
                .map(|(subject, pipelines)| Principal {
                    scheme: AuthMode::Jwt,
                    key: format!("jwt:{subject}"),
                    pipelines,
                })
        } else {
            return Caller::Anonymous;
        };
        match verified {
            Ok(principal) => Caller::Principal(principal),
            Err(refusal) => Caller::Refused(refusal),
        }
    }

    /// The mode of a pipeline; a name no pipeline has (a record of a pipeline since removed
    /// from the config) gets the global mode.
    fn mode_of(&self, pipeline: &str) -> AuthMode {
        self.modes
            .get(pipeline)
            .copied()
            .unwrap_or(self.default_mode)
    }

    /// Whether the caller may submit to and read from this pipeline.
    pub fn authorize(&self, caller: &Caller, pipeline: &str) -> Result<(), Denied> {
        let mode = self.mode_of(pipeline);
        if mode == AuthMode::None {
            return Ok(());
        }
        let principal = match caller {
            Caller::Anonymous => return Err(Denied::Required),
            Caller::Refused(refusal) => return Err(Denied::Refused(*refusal)),
            Caller::Principal(principal) => principal,
        };
        if principal.scheme != mode {
            return Err(Denied::Refused(Refusal::Unknown));
        }
        match &principal.pipelines {
            Some(allowed) if !allowed.iter().any(|p| p == pipeline) => Err(Denied::Forbidden),
            _ => Ok(()),
        }
    }
}
