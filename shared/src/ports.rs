//! What the use cases need from outside, as small traits in the domain's own words
//! (`grant`, `identity`, `upstream`, `security`, `types`). The adapters live in `aws`
//! (DynamoDB, KMS, EventBridge) and `google` (token endpoint, Calendar, ID tokens,
//! security event tokens), with `system` for the process's clock and randomness;
//! `memory` (feature `testing`) has in-memory twins for unit tests and the simulation.

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::grant::{Ciphertext, Grant, RemovalReason, TokenPurpose};
use crate::identity::{Rejection, VerifiedIdentity};
use crate::secret::Secret;
use crate::security::{RiscRejection, SecurityEvent, TokenLookup};
use crate::types::{CalendarId, EventId, IdToken, ScopeSet, SendUpdates, Sub};
use crate::upstream::{CalendarError, TokenError, TokenGrant};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transport failure, timeout or throttling: retry later.
    #[error("{service} unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
    /// A conditional write found another version than expected.
    #[error("the item changed concurrently")]
    Conflict,
    /// No key can decrypt this ciphertext any more (it is not a ciphertext of ours,
    /// is bound to another owner, or its key was deleted). Never a transient state.
    #[error("ciphertext can no longer be decrypted: {0}")]
    Undecryptable(String),
    #[error("stored item unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Other(String),
}

/// Grants, one per Google account, with versioned conditional writes.
#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn load(&self, sub: &Sub) -> Result<Option<Grant>, StoreError>;
    /// Writes `grant` if the stored version is still `expected` (`None`: absent).
    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError>;
    /// Records `grant.last_used_at` (see `Grant::used`) and the grant's place in
    /// the sweep index that follows from it as of `now` (Unix s), if the stored
    /// version is still `grant.version`, without a new version.
    async fn touch(&self, grant: &Grant, now: i64) -> Result<(), StoreError>;
    /// Deletes the grant if its version is still `grant.version`.
    async fn remove(&self, grant: &Grant, reason: RemovalReason) -> Result<(), StoreError>;
    /// The user whose stored refresh token has this identifier.
    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<Sub>, StoreError>;

    /// The grants of several users in as few calls as the store allows (for a batch
    /// of jobs). Users without a grant are left out, and so may be users the store
    /// did not get to: a caller loads those one by one. By default one `load` each.
    async fn load_many(&self, subs: &[Sub]) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::with_capacity(subs.len());
        for sub in subs {
            grants.extend(self.load(sub).await?);
        }
        Ok(grants)
    }
}

/// Encrypts tokens bound to their owner and purpose (a KMS encryption context).
#[async_trait]
pub trait TokenSealer: Send + Sync {
    async fn seal(&self, sub: &Sub, purpose: TokenPurpose, token: &Secret) -> Result<Ciphertext, StoreError>;
    async fn open(&self, sub: &Sub, purpose: TokenPurpose, ciphertext: &Ciphertext) -> Result<Secret, StoreError>;
}

/// Security event `jti`s already applied.
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    async fn seen(&self, jti: &str) -> Result<bool, StoreError>;
    async fn record(&self, jti: &str) -> Result<(), StoreError>;
}

/// Google's OAuth token and revoke endpoints.
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    async fn exchange_code(&self, code: &Secret, redirect_uri: &str) -> Result<TokenGrant, TokenError>;
    /// A new access token; with `scopes`, narrowed to that subset of the grant.
    async fn refresh(&self, refresh_token: &Secret, scopes: Option<&ScopeSet>) -> Result<TokenGrant, TokenError>;
    /// `Ok(false)` when Google says the token was already invalid.
    async fn revoke(&self, token: &Secret) -> Result<bool, TokenError>;
}

/// Google Calendar `events.insert` / `events.get`.
#[async_trait]
pub trait Calendar: Send + Sync {
    async fn insert(
        &self,
        access_token: &Secret,
        calendar: &CalendarId,
        send_updates: SendUpdates,
        event: &Value,
    ) -> Result<Value, CalendarError>;
    async fn get(&self, access_token: &Secret, calendar: &CalendarId, id: &EventId) -> Result<Value, CalendarError>;
}

/// Google ID-token verification.
#[async_trait]
pub trait IdTokens: Send + Sync {
    async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection>;
}

/// Cross-Account Protection security event token verification.
#[async_trait]
pub trait SecurityEventTokens: Send + Sync {
    async fn verify(&self, token: &str) -> Result<SecurityEvent, RiscRejection>;
}

/// One event for the team's bus (EventBridge `DetailType` + `Detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub detail_type: &'static str,
    pub detail: Value,
}

/// Why an event did not reach the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Throttled, down or not answered: send it again later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The bus will never take this entry (too large, malformed).
    #[error("event refused for good: {0}")]
    Refused(String),
}

/// Where lifecycle and job events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// One result per event, in order: one event that could not be sent never
    /// holds back the others.
    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>>;
}

/// Wall-clock time: timestamps, token expiries, leases shared between environments.
/// (Monotonic time and sleeping are tokio's, which the simulation runs paused.)
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;

    fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    fn now_unix_ms(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Randomness that needs no cryptographic strength (backoff jitter, lease owners).
pub trait Randomness: Send + Sync {
    fn next_u64(&self) -> u64;
}

/// An access token sealed for every execution environment to share (the purpose
/// `access_token`), bound to the refresh token (and grant version) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedToken {
    pub ciphertext: Ciphertext,
    /// Unix seconds.
    pub expires_at: i64,
    /// What the token carries, as Google named it.
    pub scopes: ScopeSet,
    /// Names the refresh token and grant version it came from.
    pub source: String,
}

/// Who is refreshing a user's token for a scope set, and until when (Unix ms): the
/// holder's invocation deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until_ms: i64,
}

/// The shared token of one user and scope set, and the lease on refreshing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedSlot {
    pub token: Option<SharedToken>,
    pub lease: Option<Lease>,
}

/// Access tokens shared by every execution environment, so the fleet refreshes
/// once per token lifetime (docs/architecture.md, "One refresh for the whole fleet").
#[async_trait]
pub trait SharedTokens: Send + Sync {
    /// The slot of `sub` and scope set `key`, strongly consistent.
    async fn read(&self, sub: &Sub, key: &str) -> Result<SharedSlot, StoreError>;
    /// Takes the lease unless another holder's lease is still running at `now_ms`;
    /// `Ok(false)` when it is.
    async fn lease(&self, sub: &Sub, key: &str, lease: &Lease, now_ms: i64) -> Result<bool, StoreError>;
    /// Stores the token and ends `owner`'s lease, if `owner` still holds it
    /// (`Conflict` otherwise).
    async fn store(&self, sub: &Sub, key: &str, token: &SharedToken, owner: &str) -> Result<(), StoreError>;
    /// Ends `owner`'s lease without a token (the refresh failed).
    async fn release(&self, sub: &Sub, key: &str, owner: &str) -> Result<(), StoreError>;
    /// Deletes the token if it is still this ciphertext (Google rejected it).
    async fn discard(&self, sub: &Sub, key: &str, ciphertext: &Ciphertext) -> Result<(), StoreError>;
}

/// One page of users read from the sweep index (or, for the backfill, of grants
/// not in it yet), and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub subs: Vec<Sub>,
    pub next: Option<String>,
}

/// The sweep index: grants by the day their next sweep is due (docs/grant-lifetime.md,
/// "How it reads only the due grants"), and how far the sweeper has come.
#[async_trait]
pub trait SweepIndex: Send + Sync {
    /// The users of one bucket (`grant::sweep_bucket`) due by `now` (Unix s), from
    /// `after` on.
    async fn due(&self, bucket: &str, now: i64, after: Option<&str>, limit: usize) -> Result<Page, StoreError>;
    /// The first day whose buckets have not been swept completely.
    async fn swept_until(&self) -> Result<Option<time::Date>, StoreError>;
    async fn set_swept_until(&self, day: time::Date) -> Result<(), StoreError>;
    /// Grants that are not in the index yet (stored before it existed), from
    /// `after` on: the one-time backfill.
    async fn unindexed(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError>;
}
