//! The Rust stack floor of `infra/bench` (BENCHMARKS.md): the same serving loop as
//! the C floor (`infra/lib/runtime_floor.c`, `FLOOR_SERVE`), built from what every
//! function is built on: the Lambda runtime crate's concurrent loop
//! (`run_concurrent`, one invocation at a time unless `AWS_LAMBDA_MAX_CONCURRENCY`
//! says more) on the functions' Tokio runtime (`shared::entry::runtime`), each event
//! read as JSON, and the functions' shared HTTP client
//! (`shared::outbound::http_client`). Per invocation it replays, one after the
//! other, the exact upstream requests a function made for one warm invocation
//! (`FLOOR_CALLS="PORT=FILE,..."`, each FILE one raw HTTP/1.1 request to
//! 127.0.0.1:PORT), reads each answer whole, and answers with `FLOOR_RESPONSE`.
//! A function's CPU above this figure is its own work (logging, signing, JSON,
//! its logic); the gap between this floor and the C floor is the stack's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// One captured request, parsed once.
struct Call {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Bytes,
}

fn parse(port: &str, raw: &[u8]) -> Result<Call, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next().ok_or("no request line")?.split(' ');
    let (Some(method), Some(target)) = (start.next(), start.next()) else {
        return Err("malformed request line".into());
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("malformed header")?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| e.to_string())?;
        // The client writes its own framing and `Host`, as it does for a function.
        if ["host", "content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            continue;
        }
        headers.append(name, HeaderValue::from_str(value.trim()).map_err(|e| e.to_string())?);
    }
    Ok(Call {
        method: reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?,
        url: reqwest::Url::parse(&format!("http://127.0.0.1:{port}{target}")).map_err(|e| e.to_string())?,
        headers,
        body: Bytes::copy_from_slice(&raw[split + 4..]),
    })
}

fn calls() -> Result<Vec<Call>, String> {
    let spec = std::env::var("FLOOR_CALLS").unwrap_or_default();
    spec.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (port, file) = item.split_once('=').ok_or("FLOOR_CALLS: PORT=FILE expected")?;
            let raw = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            parse(port, &raw)
        })
        .collect()
}

fn main() -> Result<(), lambda_runtime::Error> {
    let calls = Arc::new(calls()?);
    let answer: Arc<Value> = Arc::new(match std::env::var("FLOOR_RESPONSE") {
        Ok(path) => serde_json::from_slice(&std::fs::read(path)?)?,
        Err(_) => Value::Null,
    });
    shared::entry::runtime()?.block_on(async move {
        let http = shared::outbound::http_client(Duration::from_secs(10));
        lambda_runtime::run_concurrent(service_fn(move |_: LambdaEvent<Value>| {
            let (calls, answer, http) = (calls.clone(), answer.clone(), http.clone());
            async move {
                for call in calls.iter() {
                    let request = http
                        .request(call.method.clone(), call.url.clone())
                        .headers(call.headers.clone())
                        .body(call.body.clone());
                    request.send().await?.bytes().await?;
                }
                Ok::<_, lambda_runtime::Error>((*answer).clone())
            }
        }))
        .await
    })
}
