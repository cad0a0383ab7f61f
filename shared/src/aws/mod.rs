//! The AWS adapters, every one through the AWS SDK: the DynamoDB grant store and
//! replay guard, KMS sealing, EventBridge publishing and the client secret from
//! Secrets Manager. Retries are the SDK's own (standard mode: its retry quota,
//! clock-skew correction and error classification), at most three attempts, each
//! attempt and the whole operation under a timeout, and the whole call bounded by
//! the invocation's deadline (`call`). Every SDK error is classified here, once.

pub mod dynamo;
pub mod eventbridge;
pub mod http;
pub mod item;
pub mod kms;
pub mod secrets;
pub mod shared_tokens;
pub mod sweep;

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::outbound::{Transport, bounded};
use crate::ports::StoreError;

pub use dynamo::DynamoGrants;
pub use eventbridge::EventBridgeSink;
pub use kms::KmsSealer;

/// No single attempt of an AWS call waits longer than this.
pub(crate) const STORE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The role's credentials and the region as Lambda hands them to every function, in
/// the environment (`lookup` reads it): the SDK's default chains would pick them first
/// anyway, and naming them spares every cold start building the rest of those chains
/// (profile files, web identity with its STS client, container and instance
/// metadata). Anywhere else (no keys or no region in the environment) the default
/// chains stay.
pub fn from_lambda_environment(
    loader: aws_config::ConfigLoader,
    lookup: impl Fn(&str) -> Option<String>,
) -> aws_config::ConfigLoader {
    let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let mut loader = loader;
    if let (Some(id), Some(secret)) = (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
        let keys = aws_credential_types::Credentials::new(id, secret, set("AWS_SESSION_TOKEN"), None, "Environment");
        loader = loader.credentials_provider(keys);
    }
    if let Some(region) = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")) {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader
}

/// Bounded retries and timeouts for every AWS client, matching the Google side, and
/// the HTTP client they share with it (`http`).
pub fn sdk_config(base: &aws_config::SdkConfig, timeout: Duration, http: &reqwest::Client) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    base.to_builder()
        .http_client(self::http::http_client(http))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(STORE_ATTEMPT_TIMEOUT)
                .operation_timeout(timeout)
                .build(),
        )
        .build()
}

/// Runs one SDK call within the deadline and classifies its failure.
pub(crate) async fn call<T, E: ProvideErrorMetadata, R>(
    service: &'static str,
    work: impl std::future::Future<Output = Result<T, SdkError<E, R>>>,
) -> Result<T, StoreError> {
    match bounded(work).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(err)) => Err(classify(service, err)),
        Err(Transport::Timeout | Transport::Unreachable | Transport::Lost) => Err(StoreError::Unavailable {
            service,
            reason: "invocation deadline reached".into(),
        }),
    }
}

/// The error codes that mean "throttled or briefly down, retry later".
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "InternalException"
            | "ServiceUnavailable"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException"
    )
}

/// Conditional-check failures are conflicts; transport failures, timeouts and
/// throttling mean "unavailable, retry later" (the SDK already retried); everything
/// else is an internal error.
fn classify<E: ProvideErrorMetadata, R>(service: &'static str, err: SdkError<E, R>) -> StoreError {
    let code = err.as_service_error().and_then(|e| e.code());
    match code {
        Some("ConditionalCheckFailedException") => return StoreError::Conflict,
        // Not ours, bound to another owner or purpose, or its key is gone for good;
        // a disabled key or one pending deletion is not (that can be undone).
        Some(code @ ("InvalidCiphertextException" | "NotFoundException")) if service == "KMS" => {
            return StoreError::Undecryptable(code.to_owned());
        }
        _ => {}
    }
    let reason = match &err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not connect".to_owned(),
        // Other variants may carry the request; never format them (it can hold a token).
        _ => "request could not be sent".to_owned(),
    };
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => code.is_some_and(is_transient_code),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable { service, reason }
    } else {
        StoreError::Other(format!("{service}: {reason}"))
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    async fn loaded(env: &[(&str, &str)]) -> aws_config::SdkConfig {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        from_lambda_environment(aws_config::defaults(aws_config::BehaviorVersion::latest()), lookup)
            .load()
            .await
    }

    #[tokio::test]
    async fn the_role_credentials_and_region_lambda_sets_are_the_ones_used() {
        let config = loaded(&[
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDAROLE"),
            ("AWS_SECRET_ACCESS_KEY", "role-secret"),
            ("AWS_SESSION_TOKEN", "role-session"),
            ("AWS_REGION", "eu-west-3"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ])
        .await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        let credentials = config
            .credentials_provider()
            .expect("a credentials provider")
            .provide_credentials()
            .await
            .expect("credentials");
        assert_eq!(credentials.access_key_id(), "ASIALAMBDAROLE");
        assert_eq!(credentials.secret_access_key(), "role-secret");
        assert_eq!(credentials.session_token(), Some("role-session"));
    }

    #[tokio::test]
    async fn the_default_region_variable_is_the_fallback() {
        let config = loaded(&[
            ("AWS_ACCESS_KEY_ID", "AKIDLOCAL"),
            ("AWS_SECRET_ACCESS_KEY", "local-secret"),
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ])
        .await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("ap-south-1"));
    }
}
