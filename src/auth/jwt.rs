//! Tokens from an existing identity provider: JWTs signed with an HS256 secret or an RS256 or
//! ES256 key, checked for issuer, audience and expiry, optionally naming allowed pipelines.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tokens::Refusal;

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
    pub public_key_file: Option<std::path::PathBuf>,
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

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    claim: String,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig, base_dir: &Path) -> Result<Self, String> {
        let key = match (config.algorithm, &config.secret, &config.public_key_file) {
            (JwtAlgorithm::HS256, Some(secret), None) => {
                DecodingKey::from_secret(secret.as_bytes())
            }
            (JwtAlgorithm::RS256 | JwtAlgorithm::ES256, None, Some(file)) => {
                let pem = std::fs::read(base_dir.join(file))
                    .map_err(|e| format!("public_key_file {}: {e}", file.display()))?;
                let key = if config.algorithm == JwtAlgorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                };
                key.map_err(|e| format!("public_key_file {}: {e}", file.display()))?
            }
            _ => return Err("HS256 takes `secret`; RS256 and ES256 take `public_key_file`".into()),
        };
        let algorithm = match config.algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_s;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            key,
            validation,
            claim: config.pipelines_claim.clone(),
        })
    }

    /// The token's subject when it is valid and may submit to `pipeline`.
    pub fn check(&self, token: &str, pipeline: &str) -> Result<String, Refusal> {
        let data =
            decode::<Value>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::Expired,
                _ => Refusal::Unknown,
            })?;
        if let Some(allowed) = data.claims.get(&self.claim) {
            let listed = allowed
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(pipeline)));
            if !listed {
                return Err(Refusal::Pipeline);
            }
        }
        Ok(data
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("jwt")
            .to_owned())
    }
}
