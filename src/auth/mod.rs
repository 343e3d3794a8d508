//! Authentication of API calls: none (open crowdsourcing), contributor tokens, or JWTs from an
//! identity provider; globally with a per-pipeline override.

mod jwt;
pub mod tokens;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use salvo::http::header::{HeaderValue, WWW_AUTHENTICATE};
use salvo::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use jwt::JwtVerifier;
pub use jwt::{JwtAlgorithm, JwtConfig};
use tokens::{Refusal, TokenStore};

use crate::config::{ConfigError, Loaded};
use crate::http::{Problem, bearer, pipeline_of};

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

/// Checks the bearer token of submissions and reads for the pipeline they concern.
#[derive(Clone)]
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
        let uses = |mode| config.auth.mode == mode || modes.values().any(|m| *m == mode);
        let tokens = uses(AuthMode::Tokens).then(|| {
            Arc::new(TokenStore::new(
                loaded.base_dir.join(&config.auth.token_file),
            ))
        });
        let jwt = match uses(AuthMode::Jwt) {
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
}

fn refuse(res: &mut Response, problem: Problem) {
    res.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res.render(problem);
}

#[async_trait]
impl Handler for Auth {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let pipeline = pipeline_of(req);
        let mode = self
            .modes
            .get(&pipeline)
            .copied()
            .unwrap_or(self.default_mode);
        if mode == AuthMode::None {
            ctrl.call_next(req, depot, res).await;
            return;
        }
        let Some(token) = bearer(req) else {
            refuse(
                res,
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "auth.required",
                    "send `Authorization: Bearer <token>`",
                ),
            );
            ctrl.skip_rest();
            return;
        };
        let checked = match mode {
            AuthMode::Tokens => self.tokens.as_ref().map(|t| t.check(&token, &pipeline)),
            AuthMode::Jwt => self.jwt.as_ref().map(|j| j.check(&token, &pipeline)),
            AuthMode::None => None,
        };
        match checked.unwrap_or(Err(Refusal::Unknown)) {
            Ok(who) => {
                tracing::debug!(client = %who, %pipeline, "authenticated");
                ctrl.call_next(req, depot, res).await;
            }
            Err(Refusal::Pipeline) => {
                let detail = format!("this token may not use the pipeline `{pipeline}`");
                res.render(Problem::new(
                    StatusCode::FORBIDDEN,
                    "auth.forbidden",
                    detail,
                ));
                ctrl.skip_rest();
            }
            Err(refusal) => {
                let (code, detail) = match refusal {
                    Refusal::Revoked => ("auth.revoked", "this token was revoked"),
                    Refusal::Expired => ("auth.expired", "this token has expired"),
                    _ => ("auth.invalid", "this token is not valid"),
                };
                refuse(res, Problem::new(StatusCode::UNAUTHORIZED, code, detail));
                ctrl.skip_rest();
            }
        }
    }
}
