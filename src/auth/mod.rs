//! Authentication of API calls: none (open crowdsourcing), contributor tokens, or JWTs from an
//! identity provider; globally with a per-pipeline override.

mod jwt;
pub mod tokens;

use std::sync::Arc;

use serde::Serialize;

use jwt::JwtVerifier;
pub use tokens::Refusal;
use tokens::TokenStore;

use crate::config::auth::{AuthMode, ReadAccess};
use crate::config::{Config, ConfigError, Loaded, PipelineConfig};

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
    /// The pipeline's records are not readable through the API (`read = "closed"`).
    Closed,
}

/// Authentication: who calls, from the bearer credential. What a caller may then do is each
/// pipeline's [`Access`].
pub struct Auth {
    tokens: Option<Arc<TokenStore>>,
    jwt: Option<Arc<JwtVerifier>>,
}

impl Auth {
    pub fn new(loaded: &Loaded) -> Result<Self, ConfigError> {
        let config = &loaded.config;
        let tokens = config.uses_auth(AuthMode::Tokens).then(|| {
            Arc::new(TokenStore::new(
                loaded.base_dir.join(&config.auth.token_file),
            ))
        });
        let jwt = match config.uses_auth(AuthMode::Jwt) {
            true => Some(Arc::new(
                JwtVerifier::new(&config.auth.jwt, &loaded.base_dir)
                    .map_err(|e| ConfigError::component("auth.jwt", e))?,
            )),
            false => None,
        };
        Ok(Self { tokens, jwt })
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
}

/// What the calls of one pipeline need: the global `[auth]` with the pipeline's override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    pub submit: AuthMode,
    pub read: ReadAccess,
}

impl Access {
    /// The settings of a pipeline the config does not name (a record of a pipeline since
    /// removed): the global `[auth]`.
    pub fn global(config: &Config) -> Self {
        Self::new(config.auth.mode, config.auth.read)
    }

    /// A pipeline's settings. One with its own `auth` guards its reads by it, not by
    /// `[auth] read`.
    pub fn of(config: &Config, pipeline: &PipelineConfig) -> Self {
        let submit = pipeline.auth.unwrap_or(config.auth.mode);
        let inherited = pipeline
            .auth
            .is_none()
            .then_some(config.auth.read)
            .flatten();
        Self::new(submit, pipeline.read.or(inherited))
    }

    fn new(submit: AuthMode, read: Option<ReadAccess>) -> Self {
        Self {
            submit,
            read: read.unwrap_or(ReadAccess::following(submit)),
        }
    }

    /// Whether the caller may submit to the pipeline named `pipeline`.
    pub fn authorize_submit(&self, caller: &Caller, pipeline: &str) -> Result<(), Denied> {
        match self.submit {
            AuthMode::None => Ok(()),
            scheme => allowed(caller, scheme, pipeline),
        }
    }

    /// Whether the caller may read the records and images of the pipeline named `pipeline`.
    pub fn authorize_read(&self, caller: &Caller, pipeline: &str) -> Result<(), Denied> {
        match self.read.scheme() {
            Some(scheme) => allowed(caller, scheme, pipeline),
            None if self.read == ReadAccess::Public => Ok(()),
            None => Err(Denied::Closed),
        }
    }
}

/// Whether a caller holds a credential of this scheme that names the pipeline.
fn allowed(caller: &Caller, scheme: AuthMode, pipeline: &str) -> Result<(), Denied> {
    let principal = match caller {
        Caller::Anonymous => return Err(Denied::Required),
        Caller::Refused(refusal) => return Err(Denied::Refused(*refusal)),
        Caller::Principal(principal) => principal,
    };
    if principal.scheme != scheme {
        return Err(Denied::Refused(Refusal::Unknown));
    }
    match &principal.pipelines {
        Some(allowed) if !allowed.iter().any(|p| p == pipeline) => Err(Denied::Forbidden),
        _ => Ok(()),
    }
}
