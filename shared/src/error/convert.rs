//! The one place module errors (AWS, Google token endpoint, Calendar, ID-token
//! verification) become `ApiError`s.

use super::{ApiError, FieldError};
use crate::identity::Rejection;
use crate::ports::StoreError;
use crate::upstream::{CalendarError, TokenError};

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { service, reason } => ApiError::Unavailable {
                service,
                reason,
                retry_after: 2,
            },
            other => ApiError::internal(other),
        }
    }
}

/// Token-endpoint failures, for code exchanges and refreshes alike. A refresh's
/// `InvalidGrant` is handled by the caller before this (it means reauthorization).
impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::InvalidGrant => ApiError::InvalidGrant,
            // Only a narrowed refresh asks for scopes; its caller names them.
            TokenError::InvalidScope => ApiError::Upstream("the token endpoint refused the requested scopes".into()),
            TokenError::RateLimited { retry_after } => ApiError::google_rate_limited(retry_after),
            TokenError::Unavailable(reason) => ApiError::google_unavailable(reason),
            TokenError::Unusable(reason) => ApiError::Upstream(reason),
        }
    }
}

impl From<CalendarError> for ApiError {
    fn from(err: CalendarError) -> Self {
        match err {
            CalendarError::InsufficientScope => ApiError::ScopeRequired {
                scopes: vec![crate::types::CALENDAR_EVENTS_SCOPE.to_owned()],
            },
            CalendarError::RateLimited { retry_after } => ApiError::google_rate_limited(retry_after),
            CalendarError::NotFound => ApiError::NotFound("Google Calendar has no such calendar for this user.".into()),
            CalendarError::Refused(message) => ApiError::InvalidEvent(vec![FieldError::general(message)]),
            CalendarError::Unavailable(reason) => ApiError::google_unavailable(reason),
            CalendarError::Unauthorized => {
                ApiError::Upstream("Calendar refused a freshly refreshed access token".into())
            }
            CalendarError::Duplicate { .. } => ApiError::Upstream("event id conflict".into()),
            CalendarError::Unusable(reason) => ApiError::Upstream(reason),
        }
    }
}

/// Whose ID token was refused decides the code: the caller's bearer, or the token
/// Google returned for a code.
#[derive(Debug, Clone, Copy)]
pub enum TokenSource {
    Bearer,
    Exchange,
}

impl ApiError {
    pub fn from_rejection(rejection: Rejection, source: TokenSource) -> Self {
        match (rejection, source) {
            (Rejection::DomainNotAllowed, _) => ApiError::DomainNotAllowed,
            (Rejection::KeysUnavailable(reason), _) => ApiError::google_unavailable(reason),
            (other, TokenSource::Bearer) => ApiError::Unauthenticated {
                credentials_present: true,
                reason: other.to_string(),
            },
            (other, TokenSource::Exchange) => ApiError::InvalidIdToken(other.to_string()),
        }
    }
}
