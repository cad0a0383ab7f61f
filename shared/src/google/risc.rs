//! Cross-Account Protection (RISC) security event tokens, RFC 8417 / RFC 8935: signed
//! by Google's RISC key, `iss` exactly the configured issuer, `aud` our client ID, no
//! `exp` (Google's tokens have none) but an `iat` of at most 7 days ago, and one or
//! more events, each matched on its full event-type URI, about a subject: a Google
//! account of Google's issuer, or (for `token-revoked`) one refresh token.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::id_token::{CLOCK_SKEW_SECS, GOOGLE_ISSUERS, Rejection, signing_kid, unix_now};
use super::jwks::{JwksCache, JwksError};
use super::jws::{Audience, VerifyingKey, required, verified_claims};
use crate::grant::TokenIds;
use crate::ports::TokenLookup;

/// Older tokens are refused: a captured token must not work again once its `jti`
/// record has expired (those are kept longer than this).
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
const RISC_EVENTS: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const OAUTH_EVENTS: &str = "https://schemas.openid.net/secevent/oauth/event-type/";

/// RFC 8935 error codes this receiver answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiscRejection {
    /// Not a parseable (or no longer acceptable) security event token.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Signature, key, issuer or audience wrong.
    #[error("authentication_failed: {0}")]
    AuthenticationFailed(String),
    /// The signing keys could not be fetched; the transmitter should retry.
    #[error("keys unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiscKind {
    TokensRevoked,
    TokenRevoked,
    SessionsRevoked,
    AccountDisabled,
    AccountEnabled,
    AccountPurged,
    CredentialChangeRequired,
    Verification,
    Other(String),
}

impl RiscKind {
    const KNOWN: [(&'static str, &'static str, RiscKind); 8] = [
        (OAUTH_EVENTS, "tokens-revoked", RiscKind::TokensRevoked),
        (OAUTH_EVENTS, "token-revoked", RiscKind::TokenRevoked),
        (RISC_EVENTS, "sessions-revoked", RiscKind::SessionsRevoked),
        (RISC_EVENTS, "account-disabled", RiscKind::AccountDisabled),
        (RISC_EVENTS, "account-enabled", RiscKind::AccountEnabled),
        (RISC_EVENTS, "account-purged", RiscKind::AccountPurged),
        (
            RISC_EVENTS,
            "account-credential-change-required",
            RiscKind::CredentialChangeRequired,
        ),
        (RISC_EVENTS, "verification", RiscKind::Verification),
    ];

    /// Only the exact URIs count: a look-alike type is an unknown one.
    fn from_uri(uri: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(base, name, _)| uri.strip_prefix(base) == Some(name))
            .map_or_else(|| RiscKind::Other(uri.to_owned()), |(_, _, kind)| kind.clone())
    }

    /// The short name, as logged and reported (`risc:<name>`).
    pub fn name(&self) -> &str {
        match self {
            RiscKind::Other(uri) => uri,
            known => Self::KNOWN
                .iter()
                .find(|(_, _, k)| k == known)
                .map_or("", |(_, name, _)| name),
        }
    }
}

/// Whom an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Sub(String),
    Token(TokenLookup),
    None,
}

/// One verified security event token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub jti: String,
    pub events: Vec<(RiscKind, Subject)>,
}

#[derive(Deserialize)]
struct SetClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    jti: Option<String>,
    iat: Option<i64>,
    events: Option<Map<String, Value>>,
}

pub struct SecurityEventVerifier {
    jwks: JwksCache,
    client_id: String,
    issuer: String,
}

impl SecurityEventVerifier {
    pub fn new(client_id: &str, issuer: &str, jwks: JwksCache) -> Self {
        Self {
            jwks,
            client_id: client_id.to_owned(),
            issuer: issuer.to_owned(),
        }
    }

    /// The signature, `iss` (exactly the configured issuer) and `aud` (our client).
    fn authenticated(&self, token: &str, key: &VerifyingKey) -> Result<SetClaims, Rejection> {
        let claims: SetClaims = verified_claims(token, key)?;
        let iss = required(claims.iss.as_deref(), "iss")?;
        let aud = required(claims.aud.as_ref(), "aud")?;
        if iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        if !aud.names(&self.client_id) {
            return Err(Rejection::WrongAudience);
        }
        Ok(claims)
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
        let claims = self.authenticated(token, &key).map_err(|r| match r {
            Rejection::Malformed => invalid("claims are not valid JSON"),
            other => RiscRejection::AuthenticationFailed(other.to_string()),
        })?;
        let iat = claims.iat.ok_or_else(|| invalid("iat missing"))?;
        let now = unix_now();
        if iat > now.saturating_add(CLOCK_SKEW_SECS as i64) || now.saturating_sub(iat) > MAX_AGE_SECS {
            return Err(invalid("iat is more than 7 days old or in the future"));
        }
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
            .map(|(uri, body)| (RiscKind::from_uri(uri), self.subject(&body["subject"])))
            .collect();
        Ok(SecurityEvent { jti, events })
    }

    fn subject(&self, subject: &Value) -> Subject {
        let text = |name: &str| subject[name].as_str().filter(|s| !s.is_empty());
        match (text("subject_type"), text("sub"), text("token")) {
            (Some("iss-sub") | None, Some(sub), _) => {
                // A subject of another issuer is another account namespace.
                let issuer_ok = text("iss").is_none_or(|iss| iss == self.issuer || GOOGLE_ISSUERS.contains(&iss));
                if issuer_ok {
                    Subject::Sub(sub.to_owned())
                } else {
                    Subject::None
                }
            }
            (Some("oauth_token"), _, Some(token)) if text("token_type").is_none_or(|t| t == "refresh_token") => {
                match text("token_identifier_alg") {
                    Some("prefix") => Subject::Token(TokenLookup::PrefixHash(TokenIds::hash_prefix(token))),
                    Some("hash_base64_sha512_sha512") => Subject::Token(TokenLookup::Hash(token.to_owned())),
                    _ => Subject::None,
                }
            }
            _ => Subject::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_match_on_the_full_uri() {
        let risc = |name: &str| format!("{RISC_EVENTS}{name}");
        assert_eq!(RiscKind::from_uri(&risc("account-purged")), RiscKind::AccountPurged);
        assert_eq!(
            RiscKind::from_uri(&format!("{OAUTH_EVENTS}tokens-revoked")),
            RiscKind::TokensRevoked
        );
        for look_alike in [
            "https://evil.example/secevent/risc/event-type/account-purged".to_owned(),
            format!("{OAUTH_EVENTS}account-purged"),
            format!("{}/x", risc("account-purged")),
        ] {
            assert!(
                matches!(RiscKind::from_uri(&look_alike), RiscKind::Other(_)),
                "{look_alike}"
            );
        }
        assert_eq!(RiscKind::AccountPurged.name(), "account-purged");
    }
}
