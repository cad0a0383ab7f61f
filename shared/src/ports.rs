//! What the use cases need from outside, as small traits. The adapters live in
//! `aws` (DynamoDB, KMS, EventBridge) and `google` (token endpoint, Calendar, ID
//! tokens); `memory` has in-memory versions for fast unit tests of the use cases.

use async_trait::async_trait;
use serde_json::Value;

use crate::google::{CalendarError, Rejection, TokenError, TokenGrant, VerifiedIdentity};
use crate::grant::{Ciphertext, Grant};
use crate::secret::Secret;
use crate::types::{CalendarId, EventId, IdToken, SendUpdates};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transport failure, timeout or throttling: retry later.
    #[error("{service} unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
    /// A conditional write found another version than expected.
    #[error("the item changed concurrently")]
    Conflict,
    #[error("stored item unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Other(String),
}

/// How a `token-revoked` security event names a refresh token (already hashed to
/// the stored form, see `grant::TokenIds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    Hash(String),
    PrefixHash(String),
}

/// Grants, one per Google account, with versioned conditional writes.
#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn load(&self, sub: &str) -> Result<Option<Grant>, StoreError>;
    /// Writes `grant` if the stored version is still `expected` (`None`: absent).
    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError>;
    /// Deletes the grant if its version is still `expected`; `reason` (`user`,
    /// `risc:account-purged`) is what lifecycle events report.
    async fn remove(&self, grant: &Grant, reason: &str) -> Result<(), StoreError>;
    /// The `sub` whose stored refresh token has this identifier.
    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<String>, StoreError>;

    /// The grants of several users in as few calls as the store allows (for a batch
    /// of jobs). Users without a grant are left out, and so may be users the store
    /// did not get to: a caller loads those one by one. By default one `load` each.
    async fn load_many(&self, subs: &[String]) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::with_capacity(subs.len());
        for sub in subs {
            grants.extend(self.load(sub).await?);
        }
        Ok(grants)
    }
}

/// Encrypts tokens bound to their owner (KMS encryption context).
#[async_trait]
pub trait TokenSealer: Send + Sync {
    async fn seal(&self, sub: &str, token: &Secret) -> Result<Ciphertext, StoreError>;
    async fn open(&self, sub: &str, ciphertext: &Ciphertext) -> Result<Secret, StoreError>;
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
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, TokenError>;
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

/// One event for the team's bus (EventBridge `DetailType` + `Detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub detail_type: &'static str,
    pub detail: Value,
}

/// Where lifecycle and job events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// All or nothing from the caller's view: an error means "send again".
    async fn publish(&self, events: &[Outgoing]) -> Result<(), StoreError>;

    /// One result per event, in order: for a batch of independent outcomes, where
    /// one event that could not be sent must not hold back the others. All or
    /// nothing unless the sink can tell them apart.
    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), StoreError>> {
        match self.publish(events).await {
            Ok(()) => events.iter().map(|_| Ok(())).collect(),
            Err(err) => events.iter().map(|_| Err(err.clone())).collect(),
        }
    }
}
