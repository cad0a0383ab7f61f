//! Request parsing at the edge: the CSRF check, JSON bodies, the bearer ID token,
//! query parameters. Everything here refuses bad input with a clear `ApiError`
//! before anything reaches Google, KMS or DynamoDB.

use http::{HeaderMap, header};
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};

use super::{Cors, MAX_BODY_BYTES};
use crate::error::{ApiError, TokenSource};
use crate::identity::VerifiedIdentity;
use crate::ports::IdTokens;
use crate::types::{IdToken, ScopeSet};

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Google's recommended CSRF defence for popup-mode codes: a custom header a
/// cross-site form cannot send, plus refusing browsers from origins we do not serve.
pub fn require_csrf_header(cors: &Cors, req: &Request) -> Result<(), ApiError> {
    match header_str(req.headers(), "x-requested-with") {
        Some(v) if v.eq_ignore_ascii_case("XMLHttpRequest") => {}
        Some(_) => {
            return Err(ApiError::CsrfCheckFailed("X-Requested-With must be XMLHttpRequest"));
        }
        None => return Err(ApiError::CsrfCheckFailed("X-Requested-With header missing")),
    }
    match req.headers().get(header::ORIGIN) {
        None => Ok(()),
        Some(origin) if origin.to_str().is_ok_and(|o| cors.allows(o)) => Ok(()),
        Some(_) => Err(ApiError::CsrfCheckFailed("Origin not allowed")),
    }
}

/// The body of a JSON request, after the media-type and size checks.
pub fn json_body(req: &Request) -> Result<&[u8], ApiError> {
    let content_type = header_str(req.headers(), header::CONTENT_TYPE.as_str()).unwrap_or("");
    if !is_json_media_type(content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body)
}

/// `application/json`, optionally with `charset=utf-8`; nothing else.
fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';').map(str::trim);
    let essence_ok = parts.next().is_some_and(|t| t.eq_ignore_ascii_case("application/json"));
    essence_ok
        && parts.all(|param| {
            param.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("charset") && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        })
}

/// Parses a body that must be a JSON object (400 `invalid_request` otherwise).
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("The request body is empty."));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_request("The request body must be a JSON object.")),
        Err(_) => Err(ApiError::invalid_request("The request body is not valid JSON.")),
    }
}

/// A required, non-empty string member.
pub fn required_string(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(ApiError::invalid_request(format!(
            "'{name}' must be a non-empty string."
        ))),
    }
}

/// An optional string member (absent or null gives `None`).
pub fn optional_string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_request(format!("'{name}' must be a string."))),
    }
}

/// The bearer Google ID token. Missing or empty credentials and a malformed token are
/// told apart because `WWW-Authenticate` differs (RFC 6750 §3.1).
pub fn bearer(req: &Request) -> Result<IdToken, ApiError> {
    let missing = |reason: &str| ApiError::Unauthenticated {
        credentials_present: false,
        reason: reason.to_owned(),
    };
    let value =
        header_str(req.headers(), header::AUTHORIZATION.as_str()).ok_or_else(|| missing("no Authorization header"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing("Authorization scheme is not Bearer"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing("empty bearer token"));
    }
    IdToken::parse(token).ok_or_else(|| ApiError::Unauthenticated {
        credentials_present: true,
        reason: "bearer is not a JWT".into(),
    })
}

/// A query parameter, percent-decoded. Reads the URI first and falls back to the
/// parameters lambda_http extracted from the event.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    if let Some(query) = req.uri().query() {
        return form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned());
    }
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// The verified bearer ID token of the caller.
pub async fn authenticate(id_tokens: &dyn IdTokens, req: &Request) -> Result<VerifiedIdentity, ApiError> {
    let token = bearer(req)?;
    let identity = id_tokens
        .verify(&token)
        .await
        .map_err(|r| ApiError::from_rejection(r, TokenSource::Bearer))?;
    crate::telemetry::record_subject(identity.sub().as_str());
    Ok(identity)
}

/// The redirect URIs a code may have been issued for.
#[derive(Debug, Clone, Default)]
pub struct RedirectUris {
    /// `ALLOWED_REDIRECT_URIS`, besides `postmessage`.
    pub allowed: Vec<String>,
    /// `ALLOW_APP_CODES`: a phone app's server auth code comes with `""`.
    pub app_codes: bool,
}

impl RedirectUris {
    /// `postmessage` (the popup code model) unless the body names an allow-listed
    /// URI, or `""` for an app's server auth code when those are allowed.
    pub fn of(&self, body: &Map<String, Value>) -> Result<String, ApiError> {
        match optional_string(body, "redirect_uri")? {
            None => Ok("postmessage".to_owned()),
            Some(uri) if uri == "postmessage" || self.allowed.contains(&uri) => Ok(uri),
            Some(uri) if uri.is_empty() && self.app_codes => Ok(uri),
            Some(_) => Err(ApiError::invalid_request("'redirect_uri' is not allowed.")),
        }
    }
}

/// An optional list of scope strings.
pub fn scope_list(body: &Map<String, Value>, name: &str) -> Result<ScopeSet, ApiError> {
    let invalid = || ApiError::invalid_request(format!("'{name}' must be a list of strings."));
    match body.get(name) {
        None | Some(Value::Null) => Ok(ScopeSet::default()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().filter(|s| !s.trim().is_empty()).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/auth/exchange");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json-patch+json",
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn csrf_header_and_origin() {
        let cors = Cors::new(vec!["https://app.example".into()]);
        let ok = request(&[("x-requested-with", "xmlhttprequest")], "");
        assert!(require_csrf_header(&cors, &ok).is_ok());
        for headers in [
            vec![],
            vec![("x-requested-with", "")],
            vec![("x-requested-with", "fetch")],
            vec![
                ("x-requested-with", "XMLHttpRequest"),
                ("origin", "https://app.example.evil"),
            ],
            vec![("x-requested-with", "XMLHttpRequest"), ("origin", "null")],
            vec![("x-requested-with", "XMLHttpRequest"), ("origin", "http://app.example")],
        ] {
            let err = require_csrf_header(&cors, &request(&headers, "")).unwrap_err();
            assert_eq!(err.code(), "csrf_check_failed", "{headers:?}");
        }
        let allowed = request(
            &[
                ("x-requested-with", "XMLHttpRequest"),
                ("origin", "https://app.example"),
            ],
            "",
        );
        assert!(require_csrf_header(&cors, &allowed).is_ok());
    }

    #[test]
    fn body_limits_and_shapes() {
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        let err = json_body(&request(&[("content-type", "application/json")], &big)).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        let err = json_body(&request(&[("content-type", "text/plain")], "{}")).unwrap_err();
        assert_eq!(err.code(), "unsupported_media_type");
        for bad in ["", "  ", "[1]", "\"code\"", "{", "null"] {
            assert_eq!(
                json_object(bad.as_bytes()).unwrap_err().code(),
                "invalid_request",
                "{bad:?}"
            );
        }
        let body = json_object(br#"{"code": "", "n": 1, "s": "x"}"#).unwrap();
        assert!(required_string(&body, "code").is_err());
        assert!(required_string(&body, "n").is_err());
        assert!(optional_string(&body, "n").is_err());
        assert_eq!(optional_string(&body, "s").unwrap().as_deref(), Some("x"));
        assert_eq!(optional_string(&body, "absent").unwrap(), None);
    }

    #[test]
    fn bearer_parsing_distinguishes_missing_from_invalid() {
        let present = |err: ApiError| match err {
            ApiError::Unauthenticated {
                credentials_present, ..
            } => credentials_present,
            other => panic!("{other:?}"),
        };
        for missing in [
            vec![],
            vec![("authorization", "")],
            vec![("authorization", "Bearer ")],
            vec![("authorization", "Basic abc")],
        ] {
            assert!(!present(bearer(&request(&missing, "")).unwrap_err()), "{missing:?}");
        }
        assert!(present(
            bearer(&request(&[("authorization", "Bearer garbage")], "")).unwrap_err()
        ));
        assert!(bearer(&request(&[("authorization", "bearer a.b.c")], "")).is_ok());
    }

    #[test]
    fn an_empty_redirect_uri_is_an_app_code_and_only_allowed_as_one() {
        let body = |uri: &str| json_object(format!(r#"{{"code":"c","redirect_uri":"{uri}"}}"#).as_bytes()).unwrap();
        let web = RedirectUris {
            allowed: vec!["https://app.example.com/cb".into()],
            app_codes: false,
        };
        assert_eq!(web.of(&body("postmessage")).unwrap(), "postmessage");
        assert_eq!(
            web.of(&body("https://app.example.com/cb")).unwrap(),
            "https://app.example.com/cb"
        );
        assert_eq!(web.of(&body("")).unwrap_err().code(), "invalid_request");
        assert_eq!(
            web.of(&body("https://evil.example")).unwrap_err().code(),
            "invalid_request"
        );
        let phones = RedirectUris { app_codes: true, ..web };
        assert_eq!(phones.of(&body("")).unwrap(), "");
        assert_eq!(
            phones.of(&body("https://evil.example")).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let req = http::Request::builder()
            .uri("/calendar/events?calendarId=team%40example.com&sendUpdates=all")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(query_param(&req, "calendarId").as_deref(), Some("team@example.com"));
        assert_eq!(query_param(&req, "sendUpdates").as_deref(), Some("all"));
        assert_eq!(query_param(&req, "missing"), None);
    }
}
