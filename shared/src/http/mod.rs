//! The HTTP edge shared by every API function: routing on the path it is given,
//! CORS, and the one place where an `ApiError` becomes a response, inside the one
//! invocation wrapper every entry kind shares (`entry::invocation`: deadline,
//! metrics, the log line). Request parsing is in `request`, the problem documents in
//! `problem`, response bodies in `views`.

mod cors;
mod problem;
pub mod request;
pub mod views;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt};
use serde::Serialize;

pub use cors::Cors;
pub use request::*;

use crate::entry::{self, Entry, Outcome};
use crate::error::ApiError;
use crate::outbound::deadline_from_epoch_ms;

pub type Response = http::Response<Body>;

/// Bodies above this are refused with 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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

/// Routes `req` to `handler`, answers preflights, 404s and 405s itself, turns errors
/// into problem documents and adds CORS headers, all inside the invocation wrapper
/// (deadline, metrics, one log line per request).
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
    let request_id = request_id(&req);
    let deadline = req
        .lambda_context_ref()
        .filter(|ctx| ctx.deadline > 0)
        .and_then(|ctx| deadline_from_epoch_ms(ctx.deadline));
    let origin = header_str(req.headers(), header::ORIGIN.as_str()).map(str::to_owned);
    let path = req.uri().path().to_owned();
    let method = req.method().clone();

    Box::pin(async move {
        let work = async {
            let span = tracing::Span::current();
            span.record("method", method.as_str());
            span.record("route", path.as_str());
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
                Ok(response) => (response, "ok"),
                Err(err) => {
                    log_error(&err);
                    (problem::response(&err, &request_id), err.code())
                }
            };
            cors.decorate(origin.as_deref(), response.headers_mut());
            (response, code)
        };
        let entry = Entry {
            kind: "http",
            request_id: &request_id,
            deadline,
        };
        let (response, _) = entry::invocation(entry, work, |(response, code)| Outcome {
            code: Cow::Borrowed(code),
            status: Some(response.status().as_u16()),
        })
        .await;
        response
    })
}

fn log_error(err: &ApiError) {
    if err.is_transient() {
        tracing::error!(error = %err, "request failed");
    } else {
        tracing::info!(error = %err, "request refused");
    }
}

fn request_id(req: &Request) -> String {
    req.lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:016x}", crate::system::random_u64()))
}

/// Hands an HTTP handler to the Lambda runtime (every API function's `main`),
/// several invocations at once when Lambda asks for it.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    lambda_http::run_concurrent(lambda_http::service_fn(move |req| {
        let answer = handler(req);
        async move { Ok::<_, Infallible>(answer.await) }
    }))
    .await
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
