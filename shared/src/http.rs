//! HTTP conventions every function shares: routing on the path it is given, CORS,
//! request parsing at the edge, and the one place where `ApiError` becomes a response.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{Instrument, field};

use crate::error::ApiError;
use crate::types::IdToken;

pub type Response = http::Response<Body>;

/// Bodies above this are refused with 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const ALLOWED_REQUEST_HEADERS: &str = "authorization, content-type, idempotency-key, x-requested-with";
const EXPOSED_HEADERS: &str = "retry-after, idempotent-replayed, www-authenticate";

#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
}

impl Route {
    pub const fn new(method: Method, path: &'static str) -> Self {
        Self { method, path }
    }
}

/// The exact origins allowed to call from a browser; no patterns, so look-alikes,
/// other schemes and `null` never match.
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

    fn decorate(&self, origin: Option<&str>, headers: &mut HeaderMap) {
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

    fn preflight(&self, methods: &str) -> Response {
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

/// Routes `req` to `handler`, answers preflights, 404s and 405s itself, turns errors
/// into problem documents, adds CORS headers, and logs one line per request.
///
/// The returned future is boxed and `Send`: proving `Send` here, once, keeps rustc's
/// higher-ranked lifetime inference from failing in every `main.rs` (rust#102211).
pub fn serve<'a, F, Fut>(
    cors: &'a Cors,
    routes: &'static [Route],
    req: Request,
    handler: F,
) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>>
where
    F: FnOnce(&'static Route, Request) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'a,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    let origin = header_str(req.headers(), header::ORIGIN.as_str()).map(str::to_owned);
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %path, sub = field::Empty);

    Box::pin(
        async move {
            let same_path: Vec<&'static Route> = routes.iter().filter(|r| r.path == path).collect();
            let allow = || {
                let mut methods: Vec<&str> = same_path.iter().map(|r| r.method.as_str()).collect();
                methods.push("OPTIONS");
                methods.join(", ")
            };
            let outcome = if same_path.is_empty() {
                Err(ApiError::NotFound(format!("No route for {path}.")))
            } else if method == Method::OPTIONS {
                Ok(cors.preflight(&allow()))
            } else if let Some(route) = same_path.iter().find(|r| r.method == method) {
                handler(route, req).await
            } else {
                Err(ApiError::MethodNotAllowed { allow: allow() })
            };

            let (mut response, code) = match outcome {
                Ok(response) => (response, None),
                Err(err) => {
                    log_error(&err);
                    (err.to_response(&request_id), Some(err.code()))
                }
            };
            cors.decorate(origin.as_deref(), response.headers_mut());
            tracing::info!(
                status = response.status().as_u16(),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                code = code.unwrap_or("ok"),
                "request finished"
            );
            response
        }
        .instrument(span),
    )
}

fn log_error(err: &ApiError) {
    match err {
        ApiError::Internal(_) | ApiError::Upstream(_) | ApiError::Unavailable { .. } => {
            tracing::error!(error = %err, "request failed");
        }
        _ => tracing::info!(error = %err, "request refused"),
    }
}

/// Records the authenticated user on the request's log line.
pub fn record_subject(sub: &str) {
    tracing::Span::current().record("sub", sub);
}

fn request_id(req: &Request) -> String {
    req.lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 12];
            aws_lc_rs::rand::fill(&mut bytes).expect("system randomness is available");
            data_encoding::HEXLOWER.encode(&bytes)
        })
}

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
        return query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k) == name).then(|| decode_component(v))
        });
    }
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("response bodies serialise");
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Text(text))
        .expect("static status and headers are valid")
}

pub fn empty(status: StatusCode) -> Response {
    http::Response::builder()
        .status(status)
        .body(Body::Empty)
        .expect("valid status")
}

#[cfg(test)]
mod tests {
    use super::*;

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
