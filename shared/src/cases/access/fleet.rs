//! The fleet's side of access tokens: one refresh per user and scope set however
//! many execution environments ask at once. The token is shared through the table,
//! sealed under the purpose `access_token`; an environment that finds none valid
//! takes a lease until its own deadline and refreshes; the others wait for its
//! token (never past their own deadline) and take the lease over once it has run
//! out (its holder died).

use std::time::Duration;

use super::{AccessTokens, MIN_REMAINING_SECS, Vended};
use crate::error::ApiError;
use crate::grant::{Grant, TokenPurpose};
use crate::outbound;
use crate::ports::{Lease, SharedToken, SharedTokens, StoreError};
use crate::secret::Secret;
use crate::telemetry::metric;
use crate::types::{ScopeSet, Sub};

/// A lease taken outside an invocation (no deadline) lasts this long.
const LEASE_WITHOUT_DEADLINE: Duration = Duration::from_secs(30);
/// How often a waiting environment looks for the lease holder's token.
const FIRST_LOOK: Duration = Duration::from_millis(50);
const LAST_LOOK: Duration = Duration::from_millis(400);

impl AccessTokens {
    /// The fleet's token for this user and scope set, or the lease to refresh it.
    pub(super) async fn through_fleet(
        &self,
        shared: &dyn SharedTokens,
        grant: &Grant,
        scopes: Option<&ScopeSet>,
        key: &str,
        source: String,
        rejected: Option<&Secret>,
    ) -> Result<(Vended, String), ApiError> {
        let sub = grant.sub();
        let owner = format!("{:016x}", self.ambient.random.next_u64());
        let mut pause = FIRST_LOOK;
        loop {
            let slot = shared.read(sub, key).await?;
            let now = self.ambient.clock.now_unix();
            let valid = slot
                .token
                .filter(|t| t.source == source && t.expires_at - now > MIN_REMAINING_SECS);
            if let Some(token) = valid {
                let plain = self
                    .sealer
                    .open(sub, TokenPurpose::AccessToken, &token.ciphertext)
                    .await?;
                if rejected != Some(&plain) {
                    metric("SharedTokenUsed", 1.0);
                    let vended = Vended {
                        token: plain,
                        expires_at: token.expires_at,
                        scopes: token.scopes,
                    };
                    return Ok((vended, source));
                }
                discard(shared, sub, key, &token).await?;
            }
            let now_ms = self.ambient.clock.now_unix_ms();
            // A lease runs until the end of its last millisecond, as the store's
            // condition (`lease_until < now`) has it.
            let held = slot.lease.filter(|l| l.until_ms >= now_ms && l.owner != owner);
            let until_ms = match held {
                Some(theirs) => theirs.until_ms,
                None => {
                    let left = outbound::remaining().unwrap_or(LEASE_WITHOUT_DEADLINE);
                    let lease = Lease {
                        owner: owner.clone(),
                        until_ms: now_ms + left.as_millis() as i64,
                    };
                    if shared.lease(sub, key, &lease, now_ms).await? {
                        return self.refresh_for_fleet(shared, grant, scopes, key, &owner).await;
                    }
                    // Taken between our read and our write: look again shortly.
                    now_ms + FIRST_LOOK.as_millis() as i64
                }
            };
            let until_theirs = Duration::from_millis((until_ms - now_ms + 1).max(0) as u64);
            let wait = pause.min(until_theirs).max(Duration::from_millis(1));
            if outbound::remaining().is_some_and(|left| left <= wait) {
                metric("SharedTokenWaitExpired", 1.0);
                return Err(ApiError::Unavailable {
                    service: "Google",
                    reason: "another environment is still refreshing this token".into(),
                    retry_after: 1,
                });
            }
            metric("SharedTokenWaited", 1.0);
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(LAST_LOOK);
        }
    }

    /// Refreshes as the lease holder, then shares the token (sealed) or gives the
    /// lease back.
    async fn refresh_for_fleet(
        &self,
        shared: &dyn SharedTokens,
        grant: &Grant,
        scopes: Option<&ScopeSet>,
        key: &str,
        owner: &str,
    ) -> Result<(Vended, String), ApiError> {
        let sub = grant.sub();
        let (vended, source) = match self.refresh(grant, scopes).await {
            Ok(refreshed) => refreshed,
            Err(err) => {
                if let Err(release) = shared.release(sub, key, owner).await {
                    tracing::debug!(error = %release, "lease not released; it runs out by itself");
                }
                return Err(err);
            }
        };
        let stored = async {
            let token = SharedToken {
                ciphertext: self.sealer.seal(sub, TokenPurpose::AccessToken, &vended.token).await?,
                expires_at: vended.expires_at,
                scopes: vended.scopes.clone(),
                source: source.clone(),
            };
            shared.store(sub, key, &token, owner).await
        };
        if let Err(err) = stored.await {
            // The token is good either way; the others refresh themselves after
            // the lease runs out.
            tracing::warn!(error = %err, "access token not shared with the fleet");
            let _ = shared.release(sub, key, owner).await;
        }
        Ok((vended, source))
    }
}

/// Drops a shared token Google rejected, unless another has replaced it already.
async fn discard(shared: &dyn SharedTokens, sub: &Sub, key: &str, token: &SharedToken) -> Result<(), ApiError> {
    match shared.discard(sub, key, &token.ciphertext).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
