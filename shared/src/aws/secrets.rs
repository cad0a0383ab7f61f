//! The OAuth client secret from Secrets Manager, read once per cold start and
//! bounded like every other AWS call, so a slow Secrets Manager fails the cold start
//! with a clear line instead of eating the first invocation's time.

use std::time::Duration;

use crate::outbound::with_deadline;
use crate::secret::Secret;

/// The whole read (with the SDK's retries) may take this long.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn read_client_secret(aws: &aws_config::SdkConfig, arn: &str) -> Result<Secret, String> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let read = super::call("Secrets Manager", client.get_secret_value().secret_id(arn).send());
    let out = with_deadline(tokio::time::Instant::now() + READ_TIMEOUT, read)
        .await
        .map_err(|e| format!("could not read GOOGLE_CLIENT_SECRET_ARN: {e}"))?;
    out.secret_string
        .map(|s| Secret::new(s.trim()))
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| "GOOGLE_CLIENT_SECRET_ARN holds no secret string".to_owned())
}
