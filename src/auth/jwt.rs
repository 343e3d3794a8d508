//! Tokens from an existing identity provider: JWTs signed with an HS256 secret or an RS256 or
//! ES256 key, checked for issuer, audience and expiry, optionally naming allowed pipelines.

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::Value;

use super::tokens::Refusal;
use crate::config::auth::{JwtConfig, JwtKey, PublicKeyAlgorithm};

/// RFC 7518 section 3.2: an HS256 key must have at least as many bits as the hash.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Why the key JWTs are checked with cannot be had from `[auth.jwt]`.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "secret: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes (this one has \
         {0}); `openssl rand -base64 48` makes one"
    )]
    ShortSecret(usize),
    #[error("public_key_file {}: {source}", .file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("public_key_file {}: {source}", .file.display())]
    NotAKey {
        file: PathBuf,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("mode \"jwt\" needs `secret` (HS256) or `public_key_file` (RS256, ES256)")]
    Missing,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    claim: String,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig, base_dir: &Path) -> Result<Self, KeyError> {
        let (algorithm, key) = match &config.key {
            None => return Err(KeyError::Missing),
            Some(JwtKey::Secret(secret)) => {
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(KeyError::ShortSecret(secret.len()));
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            Some(JwtKey::PublicKeyFile { algorithm, file }) => {
                let pem =
                    std::fs::read(base_dir.join(file)).map_err(|source| KeyError::Unreadable {
                        file: file.clone(),
                        source,
                    })?;
                let (algorithm, key) = match algorithm {
                    PublicKeyAlgorithm::RS256 => {
                        (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem))
                    }
                    PublicKeyAlgorithm::ES256 => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
                };
                let key = key.map_err(|source| KeyError::NotAKey {
                    file: file.clone(),
                    source,
                })?;
                (algorithm, key)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        // What is configured is required: a token without the claim is refused, not waved
        // through.
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            key,
            validation,
            claim: config.pipelines_claim.clone(),
        })
    }

    /// The token's subject and the pipelines it names (`None`: the claim is absent, so all),
    /// when it is valid now.
    pub fn authenticate(&self, token: &str) -> Result<(String, Option<Vec<String>>), Refusal> {
        let data =
            decode::<Value>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::Expired,
                _ => Refusal::Unknown,
            })?;
        // A claim that is not a list of names allows nothing.
        let pipelines = data.claims.get(&self.claim).map(|allowed| {
            allowed
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
        let subject = data
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("jwt")
            .to_owned();
        Ok((subject, pipelines))
    }
}
