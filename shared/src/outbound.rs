//! The one outbound policy for every call to Google and AWS: the invocation's
//! deadline, the shared HTTP client, and the single retry loop.
//!
//! The deadline is set once per invocation by the entry point (the Lambda
//! context's deadline minus a margin for the answer) and read by every call, so a
//! chain of refresh, insert, refresh, insert and get can never outlast the
//! function's timeout: a call is cut to what is left, and no retry starts once the
//! backoff alone would pass the deadline. Time here is tokio's, so the simulation
//! (which runs tokio with paused time) controls deadlines and backoff alike.
//!
//! AWS calls go through the SDK, whose own standard retry (with its retry quota,
//! clock-skew correction and error classification) does the retrying, capped at
//! three attempts and bounded by the deadline (`bounded`); Google calls and the
//! use cases' write-conflict retries use [`retry`] and [`retry_with`] here.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::ports::Randomness;
use crate::system::SystemRandom;

/// No call to Google is attempted more than this many times.
pub const MAX_ATTEMPTS: u32 = 3;
/// Time kept back from the Lambda deadline to turn an error into an answer.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(1500);
/// Below this much time left a call is not even started.
const MIN_CALL_TIME: Duration = Duration::from_millis(50);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the end of every outbound call made inside it.
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Runs `work` within `deadline` when there is one.
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => with_deadline(deadline, work).await,
        None => work.await,
    }
}

/// The deadline of a Lambda invocation (epoch milliseconds), less the answer margin.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(std::time::SystemTime::now()).ok()?;
    Some(Instant::now() + left.saturating_sub(ANSWER_MARGIN))
}

/// Time left in the current invocation (`None` outside one: no deadline).
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The timeout for one call: its own limit, cut to what the invocation has left.
/// `None` when too little is left to start a call at all.
pub fn call_timeout(limit: Duration) -> Option<Duration> {
    match remaining() {
        None => Some(limit),
        Some(left) if left < MIN_CALL_TIME => None,
        Some(left) => Some(limit.min(left)),
    }
}

/// Why a call got no usable answer, in terms that decide what may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Transport {
    /// The connection was never established: the request did not reach the server.
    #[error("could not connect")]
    Unreachable,
    #[error("timed out")]
    Timeout,
    /// Sent, but no complete answer came back: the server may have acted on it.
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

/// What one attempt tells the retry loop.
pub enum Attempt<T, E> {
    Done(Result<T, E>),
    /// Worth another try (after at least `wait`, when the server asked for one).
    Retry(E, Option<Duration>),
}

/// How often and how patiently a call is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: u32,
    /// The first backoff's cap; each later one doubles it (full jitter below it).
    pub first_backoff: Duration,
    /// Backoff caps stop doubling after this many attempts.
    pub max_doublings: u32,
}

/// Calls to Google: three attempts, 200 ms, 400 ms caps.
pub const GOOGLE: Policy = Policy {
    max_attempts: MAX_ATTEMPTS,
    first_backoff: Duration::from_millis(200),
    max_doublings: 6,
};

/// A conditional write that met a concurrent one: read again and decide again, many
/// times if need be (concurrent sign-ins of one user), with short jittered pauses.
pub const WRITE_CONFLICTS: Policy = Policy {
    max_attempts: 30,
    first_backoff: Duration::from_millis(20),
    max_doublings: 3,
};

/// Runs a Google `call` under [`GOOGLE`], jittered by the system's randomness. Each
/// attempt's latency is a `GoogleLatency` metric.
pub async fn retry<T, E, F, Fut>(what: &'static str, call: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    retry_loop(GOOGLE, &SystemRandom, Some(what), call).await
}

/// Runs `call` under `policy`: exponential backoff with full jitter drawn from
/// `random`, never sleeping past the invocation's deadline.
pub async fn retry_with<T, E, F, Fut>(policy: Policy, random: &dyn Randomness, call: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    retry_loop(policy, random, None, call).await
}

async fn retry_loop<T, E, F, Fut>(
    policy: Policy,
    random: &dyn Randomness,
    metered: Option<&'static str>,
    mut call: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let outcome = call(attempt).await;
        if let Some(what) = metered {
            crate::telemetry::latency(what, started.elapsed());
        }
        let (error, wait) = match outcome {
            Attempt::Done(result) => return result,
            Attempt::Retry(error, wait) => (error, wait),
        };
        let delay = wait.unwrap_or_else(|| backoff(&policy, random, attempt));
        let room = remaining().is_none_or(|left| left > delay + MIN_CALL_TIME);
        if attempt >= policy.max_attempts || !room {
            return Err(error);
        }
        match metered {
            Some(what) => tracing::warn!(call = what, attempt, reason = %error, "attempt failed; retrying"),
            None => tracing::debug!(attempt, reason = %error, "attempt failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// Full jitter: a random delay below the attempt's cap.
fn backoff(policy: &Policy, random: &dyn Randomness, attempt: u32) -> Duration {
    let cap = policy.first_backoff.as_millis() as u64 * (1u64 << (attempt - 1).min(policy.max_doublings));
    Duration::from_millis(random.next_u64() % (cap + 1))
}

/// The HTTP client every Google call shares, built once per cold start so
/// keep-alive connections are reused across invocations. Redirects are never
/// followed, so a compromised or misconfigured endpoint cannot bounce a token
/// request elsewhere.
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

/// Sends `request` within the invocation's deadline; a request with no time left
/// is not sent and counts as a timeout.
pub async fn send(
    http: &reqwest::Client,
    limit: Duration,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, Transport> {
    let Some(timeout) = call_timeout(limit) else {
        return Err(Transport::Timeout);
    };
    let request = request.timeout(timeout).build().map_err(|_| Transport::Lost)?;
    http.execute(request).await.map_err(|e| Transport::classify(&e))
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

/// Bounds an AWS SDK call (which retries by itself) by the invocation's deadline.
pub async fn bounded<T, E>(work: impl Future<Output = Result<T, E>>) -> Result<Result<T, E>, Transport> {
    match remaining() {
        None => Ok(work.await),
        Some(left) => tokio::time::timeout(left, work).await.map_err(|_| Transport::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn write_conflicts_are_retried_patiently_but_never_past_the_deadline() {
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry_with(WRITE_CONFLICTS, &SystemRandom, |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry("conflict".to_owned(), None)
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), WRITE_CONFLICTS.max_attempts);

        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let _: Result<(), String> = with_deadline(started + Duration::from_millis(300), async {
            retry_with(WRITE_CONFLICTS, &SystemRandom, |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Attempt::Retry("conflict".to_owned(), None)
            })
            .await
        })
        .await;
        assert!(calls.load(Ordering::SeqCst) < WRITE_CONFLICTS.max_attempts);
        assert!(started.elapsed() <= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn retries_stop_after_three_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry("test", |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry("down".to_owned(), Some(Duration::from_millis(1)))
        })
        .await;
        assert_eq!(result, Err("down".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn no_retry_sleeps_past_the_deadline() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let result: Result<(), String> = with_deadline(deadline, async {
            retry("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Attempt::Retry("busy".to_owned(), Some(Duration::from_secs(5)))
            })
            .await
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 5 s wait does not fit in 200 ms");
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn calls_are_cut_to_the_time_left() {
        assert_eq!(call_timeout(Duration::from_secs(8)), Some(Duration::from_secs(8)));
        let deadline = Instant::now() + Duration::from_secs(2);
        with_deadline(deadline, async {
            let cut = call_timeout(Duration::from_secs(8)).unwrap();
            assert!(cut <= Duration::from_secs(2));
        })
        .await;
        with_deadline(Instant::now(), async {
            assert_eq!(call_timeout(Duration::from_secs(8)), None);
        })
        .await;
    }
}
