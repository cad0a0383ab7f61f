//! The one error type of the project and its single mapping to RFC 9457 problem
//! responses (SPEC §3). Details meant for operators go to the logs, never to clients.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::types::CALENDAR_EVENTS_SCOPE;

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
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("Google rejected the authorization code")]
    InvalidGrant,
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
    #[error("Calendar scope required")]
    ScopeRequired,
    #[error("not found: {0}")]
    NotFound(String),
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

/// Every `code` the API can answer with; the OpenAPI coverage test walks this list.
pub const ALL_CODES: &[&str] = &[
    "invalid_request",
    "invalid_grant",
    "unauthenticated",
    "invalid_id_token",
    "reauthorization_required",
    "csrf_check_failed",
    "account_mismatch",
    "domain_not_allowed",
    "scope_not_granted",
    "scope_required",
    "not_found",
    "method_not_allowed",
    "offline_access_required",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_event",
    "rate_limited",
    "upstream_error",
    "upstream_unavailable",
    "internal",
];

impl ApiError {
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest(_) | InvalidGrant => StatusCode::BAD_REQUEST,
            Unauthenticated { .. } | InvalidIdToken(_) | ReauthorizationRequired => StatusCode::UNAUTHORIZED,
            CsrfCheckFailed(_) | AccountMismatch | DomainNotAllowed | ScopeNotGranted { .. } | ScopeRequired => {
                StatusCode::FORBIDDEN
            }
            NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            OfflineAccessRequired => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidEvent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Upstream(_) => StatusCode::BAD_GATEWAY,
            Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "invalid_request",
            InvalidGrant => "invalid_grant",
            Unauthenticated { .. } => "unauthenticated",
            InvalidIdToken(_) => "invalid_id_token",
            ReauthorizationRequired => "reauthorization_required",
            CsrfCheckFailed(_) => "csrf_check_failed",
            AccountMismatch => "account_mismatch",
            DomainNotAllowed => "domain_not_allowed",
            ScopeNotGranted { .. } => "scope_not_granted",
            ScopeRequired => "scope_required",
            NotFound(_) => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            OfflineAccessRequired => "offline_access_required",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            InvalidEvent(_) => "invalid_event",
            RateLimited { .. } => "rate_limited",
            Upstream(_) => "upstream_error",
            Unavailable { .. } => "upstream_unavailable",
            Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "Invalid request",
            InvalidGrant => "Invalid authorization code",
            Unauthenticated { .. } => "Authentication required",
            InvalidIdToken(_) => "Invalid ID token",
            ReauthorizationRequired => "Reauthorization required",
            CsrfCheckFailed(_) => "CSRF check failed",
            AccountMismatch => "Account mismatch",
            DomainNotAllowed => "Domain not allowed",
            ScopeNotGranted { .. } => "Scope not granted",
            ScopeRequired => "Scope required",
            NotFound(_) => "Not found",
            MethodNotAllowed { .. } => "Method not allowed",
            OfflineAccessRequired => "Offline access required",
            PayloadTooLarge => "Payload too large",
            UnsupportedMediaType => "Unsupported media type",
            InvalidEvent(_) => "Invalid event",
            RateLimited { .. } => "Rate limited",
            Upstream(_) => "Upstream error",
            Unavailable { .. } => "Upstream unavailable",
            Internal(_) => "Internal error",
        }
    }

    /// The human-readable sentence for clients. Internal and upstream details stay in
    /// the logs.
    fn detail(&self) -> String {
        use ApiError::*;
        match self {
            InvalidRequest(d) => d.clone(),
            InvalidGrant => "Google rejected the authorization code (used, expired or issued for another redirect URI). Ask the user to sign in again.".into(),
            Unauthenticated { credentials_present: false, .. } => "Send a Google ID token as 'Authorization: Bearer <token>'.".into(),
            Unauthenticated { .. } => "The bearer ID token is invalid or expired. Get a fresh one from Sign in with Google.".into(),
            InvalidIdToken(_) => "The ID token Google returned for this code failed verification; nothing was stored.".into(),
            ReauthorizationRequired => "The stored Google authorization is no longer valid. Ask the user to sign in again with offline access.".into(),
            CsrfCheckFailed(why) => format!("Request refused by the CSRF check: {why}."),
            AccountMismatch => "The authorization code belongs to a different Google account than the signed-in user.".into(),
            DomainNotAllowed => "This Google account does not belong to an allowed Workspace domain.".into(),
            ScopeNotGranted { .. } => "The user did not grant every requested scope; what was granted is stored.".into(),
            ScopeRequired => "Google Calendar access has not been granted. Run incremental authorization for the required scopes.".into(),
            NotFound(d) => d.clone(),
            MethodNotAllowed { allow } => format!("This route only accepts: {allow}."),
            OfflineAccessRequired => "Google returned no refresh token and none is stored. Ask again with prompt=consent and offline access.".into(),
            PayloadTooLarge => "The request body is larger than 64 KiB.".into(),
            UnsupportedMediaType => "Send the body as 'Content-Type: application/json'.".into(),
            InvalidEvent(_) => "The event is not valid; see errors.".into(),
            RateLimited { .. } => "Google is rate-limiting requests for this user or project. Retry after the indicated delay.".into(),
            Upstream(_) => "Google answered with something unusable. If this was a sign-in, ask the user to sign in again.".into(),
            Unavailable { service, .. } => format!("{service} is unavailable right now. Retry after the indicated delay."),
            Internal(_) => "An internal error occurred.".into(),
        }
    }

    fn extensions(&self, body: &mut Map<String, Value>) {
        match self {
            ApiError::ScopeNotGranted { missing } => {
                body.insert("missing_scopes".into(), json!(missing));
            }
            ApiError::ScopeRequired => {
                body.insert("required_scopes".into(), json!([CALENDAR_EVENTS_SCOPE]));
            }
            ApiError::InvalidEvent(errors) => {
                body.insert("errors".into(), json!(errors));
            }
            _ => {}
        }
    }

    /// Headers this error needs besides the content type.
    fn headers(&self) -> Vec<(header::HeaderName, String)> {
        match self {
            ApiError::Unauthenticated {
                credentials_present: false,
                ..
            } => {
                vec![(header::WWW_AUTHENTICATE, "Bearer".into())]
            }
            ApiError::Unauthenticated { .. } => {
                vec![(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#.into())]
            }
            ApiError::MethodNotAllowed { allow } => vec![(header::ALLOW, allow.clone())],
            ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after, .. } => {
                vec![(header::RETRY_AFTER, (*retry_after).max(1).to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The problem+json response. `request_id` ties the answer to the log line.
    pub fn to_response(&self, request_id: &str) -> http::Response<lambda_http::Body> {
        let mut body = Map::new();
        body.insert("type".into(), json!("about:blank"));
        body.insert("title".into(), json!(self.title()));
        body.insert("status".into(), json!(self.status().as_u16()));
        body.insert("code".into(), json!(self.code()));
        body.insert("detail".into(), json!(self.detail()));
        body.insert("request_id".into(), json!(request_id));
        self.extensions(&mut body);

        let mut response = http::Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "application/problem+json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(lambda_http::Body::Text(Value::Object(body).to_string()))
            .expect("static status and headers are valid");
        for (name, value) in self.headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(err: &ApiError) -> Value {
        match err.to_response("req-1").into_body() {
            lambda_http::Body::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn every_variant_code_is_listed() {
        let samples = [
            ApiError::invalid_request("x"),
            ApiError::InvalidGrant,
            ApiError::Unauthenticated {
                credentials_present: true,
                reason: "x".into(),
            },
            ApiError::InvalidIdToken("x".into()),
            ApiError::ReauthorizationRequired,
            ApiError::CsrfCheckFailed("x"),
            ApiError::AccountMismatch,
            ApiError::DomainNotAllowed,
            ApiError::ScopeNotGranted { missing: vec![] },
            ApiError::ScopeRequired,
            ApiError::NotFound("x".into()),
            ApiError::MethodNotAllowed { allow: "GET".into() },
            ApiError::OfflineAccessRequired,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::InvalidEvent(vec![]),
            ApiError::RateLimited { retry_after: 3 },
            ApiError::Upstream("x".into()),
            ApiError::Unavailable {
                service: "Google",
                reason: "x".into(),
                retry_after: 2,
            },
            ApiError::internal("x"),
        ];
        let codes: Vec<_> = samples.iter().map(ApiError::code).collect();
        assert_eq!(codes, ALL_CODES);
    }

    #[test]
    fn problem_document_has_the_required_members_and_hides_internals() {
        let err = ApiError::internal("dynamodb said: secret detail");
        let doc = body(&err);
        for member in ["type", "title", "detail", "request_id", "code"] {
            assert!(doc[member].as_str().is_some_and(|s| !s.is_empty()), "{member}");
        }
        assert_eq!(doc["status"], 500);
        assert!(!doc.to_string().contains("secret detail"));
    }

    #[test]
    fn www_authenticate_distinguishes_missing_from_invalid_credentials() {
        let missing = ApiError::Unauthenticated {
            credentials_present: false,
            reason: "".into(),
        };
        let invalid = ApiError::Unauthenticated {
            credentials_present: true,
            reason: "".into(),
        };
        assert_eq!(missing.to_response("r").headers()["www-authenticate"], "Bearer");
        assert_eq!(
            invalid.to_response("r").headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let err = ApiError::RateLimited { retry_after: 0 };
        assert_eq!(err.to_response("r").headers()["retry-after"], "1");
    }

    #[test]
    fn scope_errors_carry_their_scope_lists() {
        assert_eq!(
            body(&ApiError::ScopeRequired)["required_scopes"],
            json!([CALENDAR_EVENTS_SCOPE])
        );
        let missing = ApiError::ScopeNotGranted {
            missing: vec!["a".into()],
        };
        assert_eq!(body(&missing)["missing_scopes"], json!(["a"]));
    }
}
