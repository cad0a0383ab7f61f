//! AWS JSON-protocol calls without the SDK's request pipeline, for the calls on
//! every warm path: DynamoDB `GetItem` of a grant (every request of every function
//! but `publisher`) and EventBridge `PutEvents` (every job, every stream record).
//! Through the SDK each of them cost about three times the CPU of the HTTP exchange
//! itself (interceptors, configuration layers, endpoint rules and several timers per
//! attempt; BENCHMARKS.md, "Decisions"). Here the SDK's own parts do what matters:
//! its endpoint resolver, once per cold start; its SigV4 signer (`aws-sigv4`), on
//! every attempt; its credentials chain, cached until five minutes before expiry.
//! Requests go through the shared HTTP client and the one retry loop
//! (`outbound::retry`). Writes, queries and KMS stay on the SDK.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::service_config::ServiceConfigKey;
use futures_util::FutureExt;
use serde_json::Value;

use super::{STORE_ATTEMPT_TIMEOUT, is_transient_code};
use crate::outbound::{Attempt, Transport, retry_unmetered, send};
use crate::ports::StoreError;

/// Credentials are fetched again this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// One AWS service spoken to in its JSON protocol.
pub struct Service {
    /// Its name in `X-Amz-Target` errors and logs ("DynamoDB").
    pub name: &'static str,
    /// The SigV4 signing name ("dynamodb").
    signing_name: &'static str,
    /// `X-Amz-Target` is `<target_prefix>.<Operation>`.
    target_prefix: &'static str,
    content_type: &'static str,
}

pub const DYNAMODB: Service = Service {
    name: "DynamoDB",
    signing_name: "dynamodb",
    target_prefix: "DynamoDB_20120810",
    content_type: "application/x-amz-json-1.0",
};

pub const EVENTBRIDGE: Service = Service {
    name: "EventBridge",
    signing_name: "events",
    target_prefix: "AWSEvents",
    content_type: "application/x-amz-json-1.1",
};

pub struct JsonRpc {
    service: &'static Service,
    http: reqwest::Client,
    endpoint: String,
    /// `endpoint`, parsed once (the HTTP client would parse it on every request).
    url: reqwest::Url,
    host: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
}

impl JsonRpc {
    /// The DynamoDB endpoint as the SDK would resolve it from `aws`.
    pub fn dynamodb(aws: &SdkConfig, http: &reqwest::Client) -> Result<JsonRpc, String> {
        use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let params = Params::builder()
            .set_region(aws.region().map(|r| r.to_string()))
            .set_use_fips(aws.use_fips())
            .set_use_dual_stack(aws.use_dual_stack())
            .set_endpoint(configured_endpoint(aws, "DynamoDB"))
            .build()
            .map_err(|e| format!("DynamoDB endpoint: {e}"))?;
        let resolved = DefaultResolver::new().resolve_endpoint(&params).now_or_never();
        JsonRpc::new(&DYNAMODB, aws, http, resolved)
    }

    /// The EventBridge endpoint as the SDK would resolve it from `aws`.
    pub fn eventbridge(aws: &SdkConfig, http: &reqwest::Client) -> Result<JsonRpc, String> {
        use aws_sdk_eventbridge::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let params = Params::builder()
            .set_region(aws.region().map(|r| r.to_string()))
            .set_use_fips(aws.use_fips())
            .set_use_dual_stack(aws.use_dual_stack())
            .set_endpoint(configured_endpoint(aws, "EventBridge"))
            .build()
            .map_err(|e| format!("EventBridge endpoint: {e}"))?;
        let resolved = DefaultResolver::new().resolve_endpoint(&params).now_or_never();
        JsonRpc::new(&EVENTBRIDGE, aws, http, resolved)
    }

    fn new(
        service: &'static Service,
        aws: &SdkConfig,
        http: &reqwest::Client,
        resolved: Option<Result<aws_smithy_types::endpoint::Endpoint, aws_smithy_runtime_api::box_error::BoxError>>,
    ) -> Result<JsonRpc, String> {
        let endpoint = match resolved {
            Some(Ok(endpoint)) => endpoint.url().to_owned(),
            Some(Err(e)) => return Err(format!("{} endpoint: {e}", service.name)),
            None => return Err(format!("{} endpoint: not resolved at once", service.name)),
        };
        let url = reqwest::Url::parse(&endpoint).map_err(|e| format!("{} endpoint {endpoint}: {e}", service.name))?;
        let host = host_header(&url).ok_or_else(|| format!("{} endpoint {endpoint} has no host", service.name))?;
        let region = aws
            .region()
            .ok_or_else(|| "no AWS region configured (AWS_REGION)".to_owned())?
            .to_string();
        Ok(JsonRpc {
            service,
            http: http.clone(),
            endpoint,
            url,
            host,
            region,
            credentials: aws.credentials_provider(),
            cached: Mutex::new(None),
        })
    }

    /// Calls `operation` with `body` and returns the answer's JSON. Throttling,
    /// server errors and transport failures are retried; the final error is
    /// classified as for the SDK's calls.
    pub async fn call(&self, operation: &'static str, body: Vec<u8>) -> Result<Value, StoreError> {
        let target = format!("{}.{operation}", self.service.target_prefix);
        // Shared by every attempt without a copy.
        let body = bytes::Bytes::from(body);
        let outcome = retry_unmetered(operation, |_| async {
            let credentials = match self.credentials().await {
                Ok(credentials) => credentials,
                Err(e) => return Attempt::Done(Err(e)),
            };
            let request = match self.signed(&target, &body, credentials) {
                Ok(request) => request,
                Err(e) => return Attempt::Done(Err(e)),
            };
            match send(&self.http, STORE_ATTEMPT_TIMEOUT, request).await {
                Err(transport) => Attempt::Retry(Failure::Transport(transport), None),
                Ok(response) => self.answer(response).await,
            }
        })
        .await;
        outcome.map_err(|failure| failure.into_store_error(self.service.name))
    }

    async fn answer(&self, response: reqwest::Response) -> Attempt<Value, Failure> {
        let status = response.status();
        let header_code = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Retry(Failure::Transport(Transport::classify(&e)), None),
        };
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return match json {
                Some(value) => Attempt::Done(Ok(value)),
                None => Attempt::Retry(Failure::Unreadable, None),
            };
        }
        let code = json
            .as_ref()
            .and_then(|v| v.get("__type"))
            .and_then(Value::as_str)
            .or(header_code.as_deref())
            .map(|raw| error_code(raw).to_owned())
            .unwrap_or_else(|| format!("HTTP {} without an error code", status.as_u16()));
        let failure = Failure::Service {
            code,
            server_error: status.is_server_error(),
        };
        if failure.is_transient() {
            Attempt::Retry(failure, None)
        } else {
            Attempt::Done(Err(failure))
        }
    }

    fn signed(
        &self,
        target: &str,
        body: &bytes::Bytes,
        credentials: Credentials,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let headers = [
            ("content-type", self.service.content_type),
            ("host", self.host.as_str()),
            ("x-amz-target", target),
        ];
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| Failure::Signing)?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| Failure::Signing)?;
        let (instructions, _) = sign(signable, &params).map_err(|_| Failure::Signing)?.into_parts();
        let mut request = self
            .http
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, self.service.content_type)
            .header("x-amz-target", target)
            .body(body.clone());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request)
    }

    async fn credentials(&self) -> Result<Credentials, Failure> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIALS_MARGIN)
        };
        if let Some(credentials) = self.cached.lock().expect("credentials lock").clone().filter(fresh) {
            return Ok(credentials);
        }
        let provider = self.credentials.as_ref().ok_or(Failure::NoCredentials)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|_| Failure::NoCredentials)?;
        *self.cached.lock().expect("credentials lock") = Some(credentials.clone());
        Ok(credentials)
    }
}

/// The endpoint URL configured for `service_id`, looked up as the SDK's clients do:
/// the one set in code wins, then `AWS_ENDPOINT_URL_<SERVICE>` (or the profile's),
/// then `AWS_ENDPOINT_URL`.
fn configured_endpoint(aws: &SdkConfig, service_id: &str) -> Option<String> {
    if aws.get_origin("endpoint_url").is_client_config() {
        return aws.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("every field is set");
    aws.service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| aws.endpoint_url().map(str::to_owned))
}

/// The `Host` header the HTTP client sends for `url` (and so the one to sign): the
/// port only when it is not the scheme's default.
fn host_header(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    // `port()` is `None` for the scheme's default port.
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException` or
/// `ThrottlingException:http://internal.amazon.com/...` → the bare code.
fn error_code(raw: &str) -> &str {
    let code = raw.rsplit('#').next().unwrap_or(raw);
    code.split(':').next().unwrap_or(code)
}

/// Why an attempt failed, before it becomes a `StoreError`.
enum Failure {
    Transport(Transport),
    /// An error answer: its code, and whether the status was a 5xx.
    Service {
        code: String,
        server_error: bool,
    },
    /// A success status with a body that is not JSON.
    Unreadable,
    Signing,
    NoCredentials,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(t) => t.fmt(f),
            Failure::Service { code, .. } => f.write_str(code),
            Failure::Unreadable => f.write_str("unreadable answer"),
            Failure::Signing => f.write_str("request could not be signed"),
            Failure::NoCredentials => f.write_str("no AWS credentials"),
        }
    }
}

impl Failure {
    /// Worth another attempt, and "unavailable, retry later" once attempts run out.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Transport(_) | Failure::Unreadable => true,
            Failure::Service { code, server_error } => *server_error || is_transient_code(code),
            Failure::Signing | Failure::NoCredentials => false,
        }
    }

    fn into_store_error(self, service: &'static str) -> StoreError {
        match &self {
            Failure::Service { code, .. } if code == "ConditionalCheckFailedException" => StoreError::Conflict,
            failure if failure.is_transient() => StoreError::Unavailable {
                service,
                reason: self.to_string(),
            },
            // Credentials come from the execution role: without them nothing works
            // until the environment is replaced, like any other internal error.
            other => StoreError::Other(format!("{service}: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_bare() {
        assert_eq!(
            error_code("com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"),
            "ConditionalCheckFailedException"
        );
        assert_eq!(
            error_code("ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"),
            "ThrottlingException"
        );
        assert_eq!(error_code("ResourceNotFoundException"), "ResourceNotFoundException");
    }

    #[test]
    fn the_signed_host_is_the_one_sent() {
        let host = |url: &str| host_header(&reqwest::Url::parse(url).unwrap());
        assert_eq!(
            host("https://dynamodb.eu-west-1.amazonaws.com").as_deref(),
            Some("dynamodb.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            host("https://dynamodb.eu-west-1.amazonaws.com:443").as_deref(),
            Some("dynamodb.eu-west-1.amazonaws.com")
        );
        assert_eq!(host("http://127.0.0.1:5000").as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(host("http://localhost:80/").as_deref(), Some("localhost"));
    }

    #[test]
    fn failures_map_to_store_errors() {
        let service = |code: &str, server_error| Failure::Service {
            code: code.into(),
            server_error,
        };
        let unavailable = |f: Failure| matches!(f.into_store_error("DynamoDB"), StoreError::Unavailable { .. });
        assert!(unavailable(Failure::Transport(Transport::Timeout)));
        assert!(unavailable(Failure::Unreadable));
        assert!(unavailable(service("ProvisionedThroughputExceededException", false)));
        assert!(unavailable(service("ThrottlingException", false)));
        assert!(unavailable(service("HTTP 503 without an error code", true)));
        assert!(matches!(
            service("ConditionalCheckFailedException", false).into_store_error("DynamoDB"),
            StoreError::Conflict
        ));
        assert!(matches!(
            service("ResourceNotFoundException", false).into_store_error("DynamoDB"),
            StoreError::Other(_)
        ));
        assert!(matches!(
            Failure::NoCredentials.into_store_error("DynamoDB"),
            StoreError::Other(_)
        ));
    }
}
