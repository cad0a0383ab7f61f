//! The one outbound HTTP client (shared by oauth2, JWKS, revoke and Calendar) and the
//! retry rules every Google call follows.

use std::time::Duration;

/// No call toward Google is attempted more than this many times (SPEC §8).
pub const MAX_ATTEMPTS: u32 = 3;

/// Built once per cold start: keep-alive connections are reused across invocations.
/// Redirects are never followed, so a compromised or misconfigured endpoint cannot
/// bounce a token request elsewhere.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    // reqwest is built without its own crypto provider: rustls uses the aws-lc-rs
    // provider the AWS SDK already links, so there is one crypto stack.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .pool_idle_timeout(Duration::from_secs(55))
        .user_agent(concat!("google-offline-access/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static HTTP client configuration is valid")
}

/// Exponential backoff with full jitter: 0..(100 ms << attempt).
pub async fn backoff(attempt: u32) {
    let cap_ms = 100u64 << attempt.min(6);
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).expect("system randomness is available");
    let delay = u64::from_le_bytes(random) % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(delay)).await;
}

/// `Retry-After` in whole seconds (the date form is rare from Google; treat as absent).
pub fn retry_after(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u32>()
        .ok()
        .map(|s| s.max(1))
}

/// Why a call got no usable answer, in terms that decide what may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Transport {
    /// The connection was never established: the request did not reach Google.
    #[error("could not connect")]
    Unreachable,
    #[error("timed out")]
    Timeout,
    /// Sent, but no complete answer came back: Google may have acted on it.
    #[error("connection lost before an answer")]
    Lost,
}

impl Transport {
    pub fn classify(err: &reqwest::Error) -> Self {
        if err.is_connect() {
            Transport::Unreachable
        } else if err.is_timeout() {
            Transport::Timeout
        } else {
            Transport::Lost
        }
    }
}
