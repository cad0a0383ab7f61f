//! What Google's token endpoint and Calendar answer, in the service's words: the
//! grant a token request returns and the ways each endpoint can fail. The adapters
//! in `google` translate HTTP into these; the use cases decide what each means.

use std::time::Duration;

use crate::secret::Secret;
use crate::types::{IdToken, ScopeSet};

/// What the token endpoint granted. Secrets stay wrapped until they reach KMS.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: Secret,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<Secret>,
    /// Set when the user granted time-limited access (or the consent screen is in
    /// Testing): how long the refresh token has left.
    pub refresh_token_expires_in: Option<Duration>,
    /// `None` when Google omitted `scope`.
    pub scopes: Option<ScopeSet>,
    pub id_token: Option<IdToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The code or refresh token is used, expired, revoked or malformed.
    #[error("invalid_grant")]
    InvalidGrant,
    /// A refresh asked for scopes the grant does not hold.
    #[error("invalid_scope")]
    InvalidScope,
    #[error("Google rate-limited the token endpoint")]
    RateLimited { retry_after: Option<u32> },
    /// Google could not be reached, or answered 5xx, after the allowed attempts.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// An answer we cannot use (including a lost answer to a code exchange: the code
    /// may be spent, so it is not retried), or a refusal with no other meaning.
    #[error("token endpoint answer unusable: {0}")]
    Unusable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The access token is invalid or expired.
    #[error("access token rejected")]
    Unauthorized,
    #[error("token lacks a Calendar scope")]
    InsufficientScope,
    #[error("rate limited")]
    RateLimited { retry_after: Option<u32> },
    /// An event with this id exists. `ours` is true when an earlier attempt of this
    /// same call may have created it.
    #[error("event id already exists")]
    Duplicate { ours: bool },
    #[error("calendar or event not found")]
    NotFound,
    /// Google refused the request as invalid or forbidden; its message is safe to show.
    #[error("Google refused the event: {0}")]
    Refused(String),
    #[error("Calendar unavailable: {0}")]
    Unavailable(String),
    #[error("Calendar answer unusable: {0}")]
    Unusable(String),
}
