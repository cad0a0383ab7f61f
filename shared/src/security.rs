//! Cross-Account Protection in the service's words: a verified security event
//! (RFC 8417) with its `jti`, and for each event its type and whom it is about.
//! The verifier in `google::risc` builds these; `cases::security` applies them.

use crate::types::Sub;

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
    pub fn from_uri(uri: &str) -> Self {
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

/// How a `token-revoked` event names a refresh token, already in the stored form
/// (see `grant::TokenIds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    /// `hash_base64_sha512_sha512`, in standard padded base64 whatever alphabet or
    /// padding Google sent.
    Hash(String),
    /// SHA-256 (hex) of the token's 16-character prefix.
    PrefixHash(String),
}

/// Whom an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Sub(Sub),
    Token(TokenLookup),
    None,
}

/// One verified security event token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub jti: String,
    pub events: Vec<(RiscKind, Subject)>,
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
