//! Cross-Account Protection (RISC) security event tokens, RFC 8417 / RFC 8935: signed
//! by Google's RISC key, `typ` (when present) `secevent+jwt` or `JWT` as Google sends
//! it, `iss` exactly the configured issuer, `aud` our client ID, no `exp` required
//! (Google's tokens have none) but an `iat` of at most 7 days ago, and one or more
//! events, each matched on its full event-type URI, about a subject: a Google
//! account of Google's issuer (`iss-sub`, with its `iss`), or (for `token-revoked`)
//! one refresh token.

use async_trait::async_trait;
use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::id_token::{GOOGLE_ISSUERS, unix_now};
use super::jwks::{JwksCache, JwksError};
use super::jwt::{self, CLOCK_SKEW_SECS, verified_claims};
use crate::grant::TokenIds;
use crate::identity::Rejection;
use crate::ports::SecurityEventTokens;
use crate::security::{RiscKind, RiscRejection, SecurityEvent, Subject, TokenLookup};
use crate::types::{IdToken, Sub};

/// Older tokens are refused: a captured token must not work again once its `jti`
/// record has expired (those are kept longer than this).
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
/// The `typ` of a security event token (RFC 8417), or `JWT` as Google sends it.
const TYPES: &[&str] = &["secevent+jwt", "JWT"];

#[derive(Deserialize)]
struct SetClaims {
    jti: Option<String>,
    iat: Option<i64>,
    events: Option<Map<String, Value>>,
}

pub struct SecurityEventVerifier {
    jwks: JwksCache,
    issuer: String,
    validation: jsonwebtoken::Validation,
    /// The clock `iat` is judged by (Unix seconds); the machine's, but for tests.
    clock: fn() -> i64,
}

impl SecurityEventVerifier {
    pub fn new(client_id: &str, issuer: &str, jwks: JwksCache) -> Self {
        // No `exp` is required (Google's tokens carry none); one that is present is
        // still checked.
        let mut validation = jwt::validation(&["iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        Self {
            jwks,
            issuer: issuer.to_owned(),
            validation,
            clock: unix_now,
        }
    }

    /// Judges `iat` by `clock` instead of the machine's (tests at the edges).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    pub async fn verify(&self, token: &str) -> Result<SecurityEvent, RiscRejection> {
        let token = token.trim();
        let invalid = |why: &str| RiscRejection::InvalidRequest(why.to_owned());
        if IdToken::parse(token).is_none() {
            return Err(invalid("body is not a compact JWS"));
        }
        let kid = jwt::signing_kid(token, TYPES).map_err(|r| match r {
            Rejection::UnsupportedAlgorithm(_) | Rejection::MissingKid | Rejection::UnsupportedHeader(_) => {
                RiscRejection::AuthenticationFailed(r.to_string())
            }
            other => RiscRejection::InvalidRequest(other.to_string()),
        })?;
        let key = self.jwks.key(&kid).await.map_err(|e| match e {
            JwksError::UnknownKid => RiscRejection::AuthenticationFailed("unknown kid".into()),
            JwksError::Unavailable(reason) => RiscRejection::KeysUnavailable(reason),
        })?;
        let claims: SetClaims = verified_claims(token, &key, &self.validation).map_err(|r| match r {
            Rejection::Malformed => invalid("claims are not valid JSON"),
            other => RiscRejection::AuthenticationFailed(other.to_string()),
        })?;
        let iat = claims.iat.ok_or_else(|| invalid("iat missing"))?;
        let now = (self.clock)();
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
                // A subject of another issuer is another account namespace, and one
                // that names no issuer names no account.
                let issuer_ok = text("iss").is_some_and(|iss| iss == self.issuer || GOOGLE_ISSUERS.contains(&iss));
                match Sub::parse(sub) {
                    Some(sub) if issuer_ok => Subject::Sub(sub),
                    _ => Subject::None,
                }
            }
            (Some("oauth_token"), _, Some(token)) if text("token_type").is_none_or(|t| t == "refresh_token") => {
                match text("token_identifier_alg") {
                    Some("prefix") => Subject::Token(TokenLookup::PrefixHash(TokenIds::hash_prefix(token))),
                    Some("hash_base64_sha512_sha512") => {
                        canonical_base64(token).map_or(Subject::None, |hash| Subject::Token(TokenLookup::Hash(hash)))
                    }
                    _ => Subject::None,
                }
            }
            _ => Subject::None,
        }
    }
}

#[async_trait]
impl SecurityEventTokens for SecurityEventVerifier {
    async fn verify(&self, token: &str) -> Result<SecurityEvent, RiscRejection> {
        SecurityEventVerifier::verify(self, token).await
    }
}

/// A base64 value in whatever alphabet (standard or URL-safe) and padding it came,
/// in the standard padded form the stored identifiers use.
fn canonical_base64(value: &str) -> Option<String> {
    let bytes = [BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD]
        .iter()
        .find_map(|encoding| encoding.decode(value.as_bytes()).ok())?;
    Some(BASE64.encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> SecurityEventVerifier {
        let http = crate::outbound::http_client(std::time::Duration::from_secs(1));
        let jwks = JwksCache::new(
            "https://keys.test/jwks",
            http.clone(),
            std::time::Duration::from_secs(1),
        );
        SecurityEventVerifier::new("client", "https://accounts.google.com/", jwks)
    }

    #[test]
    fn token_hashes_match_whatever_base64_alphabet_or_padding_google_used() {
        let stored = TokenIds::of(&crate::secret::Secret::new("1//refresh")).hash;
        let raw = BASE64.decode(stored.as_bytes()).unwrap();
        for sent in [
            stored.clone(),
            BASE64_NOPAD.encode(&raw),
            BASE64URL.encode(&raw),
            BASE64URL_NOPAD.encode(&raw),
        ] {
            assert_eq!(canonical_base64(&sent).as_deref(), Some(stored.as_str()), "{sent}");
        }
        assert_eq!(canonical_base64("not base64!"), None);
    }

    #[test]
    fn an_account_subject_must_name_its_issuer() {
        let v = verifier();
        let sub = |s: Value| v.subject(&s);
        assert_eq!(
            sub(serde_json::json!({"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "42"})),
            Subject::Sub(Sub::parse("42").unwrap())
        );
        assert_eq!(
            sub(serde_json::json!({"subject_type": "iss-sub", "sub": "42"})),
            Subject::None
        );
        assert_eq!(
            sub(serde_json::json!({"subject_type": "iss-sub", "iss": "https://evil.example/", "sub": "42"})),
            Subject::None
        );
    }
}
