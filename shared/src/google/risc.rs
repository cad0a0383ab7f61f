//! Cross-Account Protection (RISC) security event tokens, RFC 8417 / RFC 8935: signed
//! by Google's RISC key, `iss` exactly the configured issuer, `aud` our client ID, no
//! `exp` (Google's tokens have none), one or more events about a subject.

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::id_token::{Rejection, map_jwt_error, signing_kid};
use super::jwks::{JwksCache, JwksError};

/// RFC 8935 error codes this receiver answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiscRejection {
    /// Not a parseable security event token.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Signature, key, issuer or audience wrong.
    #[error("authentication_failed: {0}")]
    AuthenticationFailed(String),
    /// The signing keys could not be fetched; the transmitter should retry.
    #[error("keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// One verified security event token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub jti: String,
    /// `(event type, subject sub)` pairs; the type is the URI's last path segment
    /// (`tokens-revoked`), the subject absent for `verification`.
    pub events: Vec<(String, Option<String>)>,
}

#[derive(Deserialize)]
struct SetClaims {
    jti: Option<String>,
    events: Option<Map<String, Value>>,
}

pub struct SecurityEventVerifier {
    jwks: JwksCache,
    validation: Validation,
}

impl SecurityEventVerifier {
    pub fn new(client_id: &str, issuer: &str, jwks: JwksCache) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = super::id_token::CLOCK_SKEW_SECS;
        validation.validate_exp = false;
        validation.set_audience(&[client_id]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        Self { jwks, validation }
    }

    pub async fn verify(&self, token: &str) -> Result<SecurityEvent, RiscRejection> {
        let token = token.trim();
        let invalid = |why: &str| RiscRejection::InvalidRequest(why.to_owned());
        if crate::types::IdToken::parse(token).is_none() {
            return Err(invalid("body is not a compact JWS"));
        }
        let kid = signing_kid(token).map_err(|r| match r {
            Rejection::UnsupportedAlgorithm(_) | Rejection::MissingKid => {
                RiscRejection::AuthenticationFailed(r.to_string())
            }
            other => RiscRejection::InvalidRequest(other.to_string()),
        })?;
        let key = self.jwks.key(&kid).await.map_err(|e| match e {
            JwksError::UnknownKid => RiscRejection::AuthenticationFailed("unknown kid".into()),
            JwksError::Unavailable(reason) => RiscRejection::KeysUnavailable(reason),
        })?;
        let claims = jsonwebtoken::decode::<SetClaims>(token, &key, &self.validation)
            .map_err(|e| match map_jwt_error(e.kind()) {
                Rejection::Malformed => invalid("claims are not valid JSON"),
                other => RiscRejection::AuthenticationFailed(other.to_string()),
            })?
            .claims;
        let jti = claims
            .jti
            .filter(|j| !j.is_empty())
            .ok_or_else(|| invalid("jti missing"))?;
        let events = claims
            .events
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("events missing"))?;
        let events = events
            .iter()
            .map(|(uri, body)| {
                let kind = uri.rsplit('/').next().unwrap_or(uri).to_owned();
                let sub = body["subject"]["sub"].as_str().map(str::to_owned);
                (kind, sub)
            })
            .collect();
        Ok(SecurityEvent { jti, events })
    }
}
