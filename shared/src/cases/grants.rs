//! Read-modify-write of one grant under optimistic concurrency: concurrent
//! sign-ins, upgrades and revocations are merged, never lost.

use std::time::Duration;

use crate::grant::{Ciphertext, Grant, now_rfc3339};
use crate::outbound::random_u64;
use crate::ports::{GrantStore, StoreError};

const MAX_WRITE_ATTEMPTS: u32 = 30;

/// `change` sees the current grant and returns the next one (`None`: leave it);
/// a concurrent write makes us re-read and decide again. Returns what is stored.
pub async fn update<E, F>(store: &dyn GrantStore, sub: &str, mut change: F) -> Result<Option<Grant>, E>
where
    E: From<StoreError>,
    F: FnMut(Option<&Grant>) -> Result<Option<Grant>, E> + Send,
{
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        let current = store.load(sub).await?;
        let Some(next) = change(current.as_ref())? else {
            return Ok(current);
        };
        match store.save(&next, current.as_ref().map(|c| c.version)).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::Conflict) => {
                tracing::debug!(attempt, "grant changed concurrently; retrying");
                let cap = 10 + 10 * u64::from(attempt.min(5));
                tokio::time::sleep(Duration::from_millis(random_u64() % cap)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(StoreError::Other("too many concurrent writes".into()).into())
}

/// Drops a refresh token that is dead (`reason`: `invalid_grant`, `risc:<type>`).
/// With `only`, only while that ciphertext is still the stored one: a concurrent
/// sign-in may already have stored a fresh token.
pub async fn mark_dead(
    store: &dyn GrantStore,
    sub: &str,
    only: Option<&Ciphertext>,
    reason: &str,
) -> Result<(), StoreError> {
    let now = now_rfc3339();
    update(store, sub, |current| {
        Ok::<_, StoreError>(match current {
            Some(grant) if only.is_none_or(|ct| grant.holds(ct)) => grant.dead(reason, &now),
            _ => None,
        })
    })
    .await
    .map(|_| ())
}
