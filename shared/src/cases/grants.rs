//! Read-modify-write of one grant under optimistic concurrency: concurrent
//! sign-ins, upgrades, revocations and deletions are merged, never lost. Both
//! helpers here re-read and decide again when a conditional write meets a
//! concurrent one, on the one outbound policy (`outbound::WRITE_CONFLICTS`): jittered
//! pauses, and never past the invocation's deadline.

use std::future::Future;

use time::OffsetDateTime;

use crate::error::ApiError;
use crate::grant::{Ciphertext, Grant, RemovalReason};
use crate::outbound::{Attempt, WRITE_CONFLICTS, retry_with};
use crate::ports::{GrantStore, Randomness, StoreError};
use crate::security::TokenLookup;
use crate::types::Sub;

fn kept_changing() -> StoreError {
    StoreError::Other("the grant kept changing under concurrent writes".into())
}

/// `change` sees the current grant and returns the next one (`None`: leave it);
/// a concurrent write makes us re-read and decide again. Returns what is stored.
pub async fn update<E, F>(
    store: &dyn GrantStore,
    random: &dyn Randomness,
    sub: &Sub,
    change: F,
) -> Result<Option<Grant>, E>
where
    E: From<StoreError> + std::fmt::Display,
    F: Fn(Option<&Grant>) -> Result<Option<Grant>, E>,
{
    let change = &change;
    retry_with(WRITE_CONFLICTS, random, move |_| async move {
        let current = match store.load(sub).await {
            Ok(current) => current,
            Err(err) => return Attempt::Done(Err(err.into())),
        };
        let next = match change(current.as_ref()) {
            Ok(Some(next)) => next,
            Ok(None) => return Attempt::Done(Ok(current)),
            Err(err) => return Attempt::Done(Err(err)),
        };
        match store.save(&next, current.as_ref().map(|c| c.version)).await {
            Ok(()) => Attempt::Done(Ok(Some(next))),
            Err(StoreError::Conflict) => Attempt::Retry(kept_changing().into(), None),
            Err(other) => Attempt::Done(Err(other.into())),
        }
    })
    .await
}

/// Deletes the grant of `sub` once `before` has dealt with the grant as read
/// (revoked its token, say); a concurrent write makes us read, and run `before`,
/// again, so whatever was stored meanwhile is dealt with too. No grant: done.
pub async fn remove<F, Fut>(
    store: &dyn GrantStore,
    random: &dyn Randomness,
    sub: &Sub,
    reason: RemovalReason,
    before: F,
) -> Result<(), ApiError>
where
    F: Fn(Grant) -> Fut,
    Fut: Future<Output = Result<Grant, ApiError>>,
{
    let before = &before;
    retry_with(WRITE_CONFLICTS, random, move |_| async move {
        let grant = match store.load(sub).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return Attempt::Done(Ok(())),
            Err(err) => return Attempt::Done(Err(err.into())),
        };
        let grant = match before(grant).await {
            Ok(grant) => grant,
            Err(err) => return Attempt::Done(Err(err)),
        };
        match store.remove(&grant, reason).await {
            Ok(()) => Attempt::Done(Ok(())),
            Err(StoreError::Conflict) => {
                tracing::info!("grant changed while it was being removed; again");
                Attempt::Retry(kept_changing().into(), None)
            }
            Err(other) => Attempt::Done(Err(other.into())),
        }
    })
    .await
}

/// Which stored refresh token a death sentence is for.
#[derive(Debug, Clone, Copy)]
pub enum Holding<'a> {
    /// Whatever is stored (the user's whole grant died).
    Any,
    /// Only this ciphertext: a concurrent sign-in may have stored a fresh token.
    Ciphertext(&'a Ciphertext),
    /// Only the token with this identifier (a `token-revoked` security event).
    Token(&'a TokenLookup),
}

impl Holding<'_> {
    fn matches(self, grant: &Grant) -> bool {
        let Some(stored) = &grant.refresh_token else {
            return matches!(self, Holding::Any);
        };
        match self {
            Holding::Any => true,
            Holding::Ciphertext(ciphertext) => &stored.ciphertext == ciphertext,
            Holding::Token(TokenLookup::Hash(hash)) => &stored.ids.hash == hash,
            Holding::Token(TokenLookup::PrefixHash(hash)) => &stored.ids.prefix_hash == hash,
        }
    }
}

/// Drops a refresh token that is dead (`reason`: `invalid_grant`, `risc:<type>`),
/// only while the stored one is the one `holding` names. Whether it was dropped.
pub async fn mark_dead(
    store: &dyn GrantStore,
    random: &dyn Randomness,
    sub: &Sub,
    holding: Holding<'_>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let dropped = std::sync::atomic::AtomicBool::new(false);
    update(store, random, sub, |current| {
        let next = current
            .filter(|grant| holding.matches(grant))
            .and_then(|grant| grant.dead(reason, now));
        dropped.store(next.is_some(), std::sync::atomic::Ordering::Relaxed);
        Ok::<_, StoreError>(next)
    })
    .await?;
    Ok(dropped.into_inner())
}
