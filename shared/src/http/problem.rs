//! `ApiError` as an RFC 9457 problem document, with the headers its kind needs
//! (`WWW-Authenticate`, `Allow`, `Retry-After`). Internals never reach the body.

use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use super::Response;
use crate::error::ApiError;

pub fn response(err: &ApiError, request_id: &str) -> Response {
    let mut body = Map::new();
    body.insert("type".into(), json!("about:blank"));
    body.insert("title".into(), json!(err.title()));
    body.insert("status".into(), json!(err.status()));
    body.insert("code".into(), json!(err.code()));
    body.insert("detail".into(), json!(err.detail()));
    body.insert("request_id".into(), json!(request_id));
    err.extensions(&mut body, "required_scopes");

    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(lambda_http::Body::Text(Value::Object(body).to_string()))
        .expect("static status and headers are valid");
    let extra = match err {
        ApiError::Unauthenticated {
            credentials_present: false,
            ..
        } => Some((header::WWW_AUTHENTICATE, "Bearer".to_owned())),
        ApiError::Unauthenticated { .. } => {
            Some((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#.to_owned()))
        }
        ApiError::MethodNotAllowed { allow } => Some((header::ALLOW, allow.clone())),
        other => other.retry_after().map(|s| (header::RETRY_AFTER, s.to_string())),
    };
    if let Some((name, value)) = extra
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(err: &ApiError) -> Value {
        match response(err, "req-1").into_body() {
            lambda_http::Body::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn problem_document_has_the_required_members_and_hides_internals() {
        let doc = body(&ApiError::internal("dynamodb said: secret detail"));
        for member in ["type", "title", "detail", "request_id", "code"] {
            assert!(doc[member].as_str().is_some_and(|s| !s.is_empty()), "{member}");
        }
        assert_eq!(doc["status"], 500);
        assert!(!doc.to_string().contains("secret detail"));
    }

    #[test]
    fn www_authenticate_distinguishes_missing_from_invalid_credentials() {
        let header = |present| {
            let err = ApiError::Unauthenticated {
                credentials_present: present,
                reason: String::new(),
            };
            response(&err, "r").headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header(false), "Bearer");
        assert_eq!(header(true), r#"Bearer error="invalid_token""#);
    }

    #[test]
    fn retry_after_and_scope_lists() {
        let limited = response(&ApiError::RateLimited { retry_after: 0 }, "r");
        assert_eq!(limited.headers()["retry-after"], "1");
        let scopes = ApiError::ScopeRequired {
            scopes: vec!["a".into()],
        };
        assert_eq!(body(&scopes)["required_scopes"], json!(["a"]));
        let missing = ApiError::ScopeNotGranted {
            missing: vec!["a".into()],
        };
        assert_eq!(body(&missing)["missing_scopes"], json!(["a"]));
    }
}
