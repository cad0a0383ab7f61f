//! CORS for browser callers: only the exact origins in `ALLOWED_ORIGINS` get CORS
//! headers (on errors too); look-alikes, other schemes and `null` never match.

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{Response, empty};

const ALLOWED_REQUEST_HEADERS: &str = "authorization, content-type, idempotency-key, x-requested-with";
const EXPOSED_HEADERS: &str = "retry-after, idempotent-replayed, www-authenticate";

#[derive(Debug, Clone, Default)]
pub struct Cors {
    allowed: Vec<String>,
}

impl Cors {
    pub fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|o| o == origin)
    }

    pub(super) fn decorate(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return;
        };
        if let Ok(value) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }

    /// A preflight answer; `decorate` adds the origin when it is allowed.
    pub(super) fn preflight(&self, methods: &str) -> Response {
        let mut response = empty(StatusCode::NO_CONTENT);
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(methods) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_REQUEST_HEADERS),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        response
    }
}
