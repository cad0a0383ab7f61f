//! The one error type of the project. Every use case answers with an [`ApiError`];
//! each entry point renders it once: HTTP as an RFC 9457 problem (`http::problem`),
//! `tokens` as an error payload, `worker` as a job outcome. The status/code/title
//! table below is the only place those three are written; [`all_codes`] derives
//! from it. Module errors (Google, AWS, verification) convert in `convert`, and
//! nowhere else.

use serde::Serialize;
use serde_json::{Map, Value, json};

mod convert;

pub use convert::TokenSource;

/// Seconds clients are asked to wait when Google gave no `Retry-After`.
pub const DEFAULT_RETRY_AFTER: u32 = 5;

/// One `errors[]` entry of a 422 `invalid_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

/// Declares the error kinds with their status, code and title, once.
macro_rules! kinds {
    ($($kind:ident => $status:literal, $code:literal, $title:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind { $($kind),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];
            pub fn status(self) -> u16 { match self { $(Kind::$kind => $status),* } }
            pub fn code(self) -> &'static str { match self { $(Kind::$kind => $code),* } }
            pub fn title(self) -> &'static str { match self { $(Kind::$kind => $title),* } }
        }
    };
}

kinds! {
    InvalidRequest => 400, "invalid_request", "Invalid request";
    InvalidGrant => 400, "invalid_grant", "Invalid authorization code";
    InvalidJob => 400, "invalid_job", "Invalid job";
    Unauthenticated => 401, "unauthenticated", "Authentication required";
    InvalidIdToken => 401, "invalid_id_token", "Invalid ID token";
    ReauthorizationRequired => 401, "reauthorization_required", "Reauthorization required";
    CsrfCheckFailed => 403, "csrf_check_failed", "CSRF check failed";
    AccountMismatch => 403, "account_mismatch", "Account mismatch";
    DomainNotAllowed => 403, "domain_not_allowed", "Domain not allowed";
    ScopeNotGranted => 403, "scope_not_granted", "Scope not granted";
    ScopeRequired => 403, "scope_required", "Scope required";
    NotFound => 404, "not_found", "Not found";
    NotConnected => 404, "not_connected", "Not connected";
    MethodNotAllowed => 405, "method_not_allowed", "Method not allowed";
    OfflineAccessRequired => 409, "offline_access_required", "Offline access required";
    PayloadTooLarge => 413, "payload_too_large", "Payload too large";
    UnsupportedMediaType => 415, "unsupported_media_type", "Unsupported media type";
    InvalidEvent => 422, "invalid_event", "Invalid event";
    RateLimited => 429, "rate_limited", "Rate limited";
    Upstream => 502, "upstream_error", "Upstream error";
    Unavailable => 503, "upstream_unavailable", "Upstream unavailable";
    Internal => 500, "internal", "Internal error";
}

/// Every `code` the service can answer with; the OpenAPI coverage test walks it.
pub fn all_codes() -> impl Iterator<Item = &'static str> {
    Kind::ALL.iter().map(|k| k.code())
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("Google rejected the authorization code")]
    InvalidGrant,
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// `credentials_present` decides whether `WWW-Authenticate` carries `error=`.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { credentials_present: bool, reason: String },
    #[error("ID token from the exchange failed verification: {0}")]
    InvalidIdToken(String),
    #[error("stored refresh token is no longer valid")]
    ReauthorizationRequired,
    #[error("CSRF check failed: {0}")]
    CsrfCheckFailed(&'static str),
    #[error("code belongs to another Google account")]
    AccountMismatch,
    #[error("hosted domain not allowed")]
    DomainNotAllowed,
    #[error("requested scopes not granted")]
    ScopeNotGranted { missing: Vec<String> },
    /// `scopes`: what the caller must get granted first.
    #[error("scope required")]
    ScopeRequired { scopes: Vec<String> },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("no grant stored for this user")]
    NotConnected,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("offline access required")]
    OfflineAccessRequired,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("invalid event")]
    InvalidEvent(Vec<FieldError>),
    #[error("rate limited by Google")]
    RateLimited { retry_after: u32 },
    #[error("upstream error: {0}")]
    Upstream(String),
    #[error("{service} unavailable: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
        retry_after: u32,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    pub fn google_unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            service: "Google",
            reason: reason.into(),
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }

    pub fn google_rate_limited(retry_after: Option<u32>) -> Self {
        Self::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER).max(1),
        }
    }

    pub fn kind(&self) -> Kind {
        use ApiError as E;
        match self {
            E::InvalidRequest(_) => Kind::InvalidRequest,
            E::InvalidGrant => Kind::InvalidGrant,
            E::InvalidJob(_) => Kind::InvalidJob,
            E::Unauthenticated { .. } => Kind::Unauthenticated,
            E::InvalidIdToken(_) => Kind::InvalidIdToken,
            E::ReauthorizationRequired => Kind::ReauthorizationRequired,
            E::CsrfCheckFailed(_) => Kind::CsrfCheckFailed,
            E::AccountMismatch => Kind::AccountMismatch,
            E::DomainNotAllowed => Kind::DomainNotAllowed,
            E::ScopeNotGranted { .. } => Kind::ScopeNotGranted,
            E::ScopeRequired { .. } => Kind::ScopeRequired,
            E::NotFound(_) => Kind::NotFound,
            E::NotConnected => Kind::NotConnected,
            E::MethodNotAllowed { .. } => Kind::MethodNotAllowed,
            E::OfflineAccessRequired => Kind::OfflineAccessRequired,
            E::PayloadTooLarge => Kind::PayloadTooLarge,
            E::UnsupportedMediaType => Kind::UnsupportedMediaType,
            E::InvalidEvent(_) => Kind::InvalidEvent,
            E::RateLimited { .. } => Kind::RateLimited,
            E::Upstream(_) => Kind::Upstream,
            E::Unavailable { .. } => Kind::Unavailable,
            E::Internal(_) => Kind::Internal,
        }
    }

    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    pub fn title(&self) -> &'static str {
        self.kind().title()
    }

    /// Seconds to wait before retrying, for the errors that have one (always ≥ 1).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after, .. } => {
                Some((*retry_after).max(1))
            }
            _ => None,
        }
    }

    /// Transient failures: retrying later may succeed (a queue redelivers them).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            Kind::RateLimited | Kind::Unavailable | Kind::Upstream | Kind::Internal
        )
    }

    /// The human-readable sentence for clients. Internal and upstream details stay in
    /// the logs.
    pub fn detail(&self) -> String {
        use ApiError as E;
        match self {
            E::InvalidRequest(d) | E::NotFound(d) | E::InvalidJob(d) => d.clone(),
            E::InvalidGrant => "Google rejected the authorization code (used, expired or issued for another redirect URI). Ask the user to sign in again.".into(),
            E::Unauthenticated { credentials_present: false, .. } => "Send a Google ID token as 'Authorization: Bearer <token>'.".into(),
            E::Unauthenticated { .. } => "The bearer ID token is invalid or expired. Get a fresh one from Sign in with Google.".into(),
            E::InvalidIdToken(_) => "The ID token Google returned for this code failed verification; nothing was stored.".into(),
            E::ReauthorizationRequired => "The stored Google authorization is no longer valid. Ask the user to sign in again with offline access.".into(),
            E::CsrfCheckFailed(why) => format!("Request refused by the CSRF check: {why}."),
            E::AccountMismatch => "The authorization code belongs to a different Google account than the signed-in user.".into(),
            E::DomainNotAllowed => "This Google account does not belong to an allowed Workspace domain.".into(),
            E::ScopeNotGranted { .. } => "The user did not grant every requested scope; what was granted is stored.".into(),
            E::ScopeRequired { .. } => "A required Google scope has not been granted. Run incremental authorization for the required scopes.".into(),
            E::NotConnected => "No Google grant is stored for this user; they must sign in with offline access first.".into(),
            E::MethodNotAllowed { allow } => format!("This route only accepts: {allow}."),
            E::OfflineAccessRequired => "Google returned no refresh token and none is stored. Ask again with prompt=consent and offline access.".into(),
            E::PayloadTooLarge => "The request body is larger than 64 KiB.".into(),
            E::UnsupportedMediaType => "Send the body as 'Content-Type: application/json'.".into(),
            E::InvalidEvent(_) => "The event is not valid; see errors.".into(),
            E::RateLimited { .. } => "Google is rate-limiting requests for this user or project. Retry after the indicated delay.".into(),
            E::Upstream(_) => "Google answered with something unusable. If this was a sign-in, ask the user to sign in again.".into(),
            E::Unavailable { service, .. } => format!("{service} is unavailable right now. Retry after the indicated delay."),
            E::Internal(_) => "An internal error occurred.".into(),
        }
    }

    /// Members beyond the standard ones, under the names the contract gives them.
    /// `scope_field` names the list on `scope_required` (`required_scopes` over HTTP,
    /// `missing_scopes` in a `tokens` payload).
    pub fn extensions(&self, body: &mut Map<String, Value>, scope_field: &str) {
        match self {
            ApiError::ScopeNotGranted { missing } => {
                body.insert("missing_scopes".into(), json!(missing));
            }
            ApiError::ScopeRequired { scopes } => {
                body.insert(scope_field.into(), json!(scopes));
            }
            ApiError::InvalidEvent(errors) => {
                body.insert("errors".into(), json!(errors));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Rejection;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let codes: Vec<_> = all_codes().collect();
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(codes.len(), unique.len());
        assert!(
            Kind::ALL
                .iter()
                .all(|k| (400..600).contains(&k.status()) && !k.title().is_empty())
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(ApiError::RateLimited { retry_after: 0 }.retry_after(), Some(1));
        assert_eq!(ApiError::google_rate_limited(Some(0)).retry_after(), Some(1));
        assert_eq!(ApiError::InvalidGrant.retry_after(), None);
    }

    #[test]
    fn scope_lists_are_named_for_their_audience() {
        let err = ApiError::ScopeRequired {
            scopes: vec!["a".into()],
        };
        let mut body = Map::new();
        err.extensions(&mut body, "required_scopes");
        assert_eq!(body["required_scopes"], json!(["a"]));
        let mut body = Map::new();
        err.extensions(&mut body, "missing_scopes");
        assert_eq!(body["missing_scopes"], json!(["a"]));
    }

    #[test]
    fn rejections_map_by_whose_token_it_was() {
        let bearer = ApiError::from_rejection(Rejection::Expired, TokenSource::Bearer);
        assert_eq!(bearer.code(), "unauthenticated");
        let exchanged = ApiError::from_rejection(Rejection::Expired, TokenSource::Exchange);
        assert_eq!(exchanged.code(), "invalid_id_token");
        let keys = ApiError::from_rejection(Rejection::KeysUnavailable("x".into()), TokenSource::Bearer);
        assert_eq!((keys.code(), keys.retry_after()), ("upstream_unavailable", Some(5)));
    }
}
