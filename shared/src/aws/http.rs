//! The AWS SDK's HTTP client: the one reqwest client (rustls on aws-lc-rs, the
//! compiled-in webpki root set) that every Google call already uses. The SDK's own
//! hyper client would read and parse the system trust store (`/etc/ssl/certs`) at
//! every cold start, about 5 ms of init here (docs/decisions/0003-one-http-client-for-the-aws-sdk.md); this one
//! has nothing to load, and there is one connection pool, one TLS stack and one
//! set of roots for every outbound call.
//!
//! Requests are bounded by the SDK itself (per-attempt and per-operation timeouts,
//! `super::sdk_config`) and by reqwest's connect and total timeouts; failures are
//! classified as the SDK's own client classifies them, so its retry policy sees
//! the same errors: timeouts and I/O failures are transient, a request that could
//! not be built is not.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The SDK's HTTP client over `http` (see the module documentation).
pub fn http_client(http: &reqwest::Client) -> SharedHttpClient {
    SharedHttpClient::new(Client(Connector { http: http.clone() }))
}

#[derive(Debug)]
struct Client(Connector);

impl HttpClient for Client {
    /// One connector whatever the settings: the connect limit is reqwest's (at most
    /// 3 s) and every attempt is cut by the SDK's attempt timeout.
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.0.clone())
    }
}

#[derive(Debug, Clone)]
struct Connector {
    http: reqwest::Client,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.http.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(Box::new(e)))?;
            let (parts, body) = request.into_parts();
            // Every AWS call here (DynamoDB, KMS, EventBridge, Secrets Manager) has a
            // small in-memory body.
            let body = body
                .bytes()
                .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?
                .to_vec();
            let url = parts.uri.to_string();
            let response = http
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            let mut answer = http::Response::new(SdkBody::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

/// As the SDK's hyper client: timeouts and connection failures are transient (the
/// SDK retries them), a request that could not even be built is the caller's error.
fn classify(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(Box::new(err))
    } else if err.is_builder() {
        ConnectorError::user(Box::new(err))
    } else {
        ConnectorError::io(Box::new(err))
    }
}
