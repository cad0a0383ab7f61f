//! Access tokens for a user who is not there, for one scope set: the environment's
//! cached one while more than five minutes of its life remain; else the one the
//! fleet shares through the table (sealed under the purpose `access_token`); else a
//! refresh with the stored refresh token, by whichever environment takes the lease,
//! while the others wait for its token (never past their own deadline). A rotated
//! refresh token is stored; `invalid_grant` marks the grant dead; a use at Google is
//! recorded (daily) so the sweeper knows the grant is alive. Serves `POST
//! /calendar/events`, the `worker` jobs, `tokens` vending and the sweeper alike.

use std::sync::Arc;
use std::time::Duration;

mod fleet;

use super::grants::{self, Holding};
use super::token_cache::source_of;
pub use super::token_cache::{MIN_REMAINING_SECS, TokenCache, Vended};
use crate::error::ApiError;
use crate::grant::{Grant, GrantStatus, SealedToken, TokenIds, TokenPurpose};
use crate::ports::{GrantStore, SharedTokens, StoreError, TokenEndpoint, TokenSealer};
use crate::secret::Secret;
use crate::system::Ambient;
use crate::telemetry::metric;
use crate::types::{ScopeSet, Sub};
use crate::upstream::TokenError;

/// Google's access tokens live an hour; assume so when `expires_in` is missing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

pub struct AccessTokens {
    grants: Arc<dyn GrantStore>,
    sealer: Arc<dyn TokenSealer>,
    google: Arc<dyn TokenEndpoint>,
    shared: Option<Arc<dyn SharedTokens>>,
    ambient: Ambient,
    cache: TokenCache,
}

impl AccessTokens {
    pub fn new(
        grants: Arc<dyn GrantStore>,
        sealer: Arc<dyn TokenSealer>,
        google: Arc<dyn TokenEndpoint>,
        ambient: Ambient,
    ) -> Self {
        Self {
            grants,
            sealer,
            google,
            shared: None,
            ambient,
            cache: TokenCache::default(),
        }
    }

    /// Shares access tokens with the rest of the fleet through `shared`.
    pub fn with_shared(mut self, shared: Arc<dyn SharedTokens>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn grants(&self) -> &Arc<dyn GrantStore> {
        &self.grants
    }

    pub fn ambient(&self) -> &Ambient {
        &self.ambient
    }

    /// The grant of `sub` if it can act offline: stored (or `known`, read for this
    /// call already), alive, with the scopes `check` wants, and a refresh token. The
    /// order of the checks is the contract's.
    pub async fn usable_grant(
        &self,
        sub: &Sub,
        known: Option<Grant>,
        check: impl FnOnce(&ScopeSet) -> Result<(), ApiError>,
    ) -> Result<Grant, ApiError> {
        let grant = match known {
            Some(grant) => grant,
            None => self.grants.load(sub).await?.ok_or(ApiError::NotConnected)?,
        };
        if grant.status == GrantStatus::ReauthorizationRequired {
            return Err(ApiError::ReauthorizationRequired);
        }
        check(&grant.scopes)?;
        if grant.refresh_token.is_none() {
            return Err(ApiError::OfflineAccessRequired);
        }
        Ok(grant)
    }

    /// A token for `sub` carrying exactly `requested` (every granted scope when
    /// empty), with at least five minutes left; and the grant it came from.
    pub async fn vend(&self, sub: &Sub, requested: &ScopeSet) -> Result<(Vended, Grant), ApiError> {
        let grant = self
            .usable_grant(sub, None, |granted| match requested.missing_from(granted) {
                missing if missing.is_empty() => Ok(()),
                missing => Err(ApiError::ScopeRequired { scopes: missing }),
            })
            .await?;
        let narrowed = (!requested.is_empty()).then_some(requested);
        let vended = self.token(&grant, narrowed, None).await?;
        Ok((vended, grant))
    }

    /// A token for `grant` (narrowed to `scopes`, if given) with more than five
    /// minutes left. `rejected` is a token Google just refused: never handed out
    /// again. One refresh per user and scope set at a time in this environment, and
    /// (with a shared store) in the whole fleet.
    pub async fn token(
        &self,
        grant: &Grant,
        scopes: Option<&ScopeSet>,
        rejected: Option<&Secret>,
    ) -> Result<Vended, ApiError> {
        let sub = grant.sub();
        let source = source_of(grant).ok_or(ApiError::OfflineAccessRequired)?;
        let key = scopes.unwrap_or(&grant.scopes).key();
        let usable = |v: &Vended| rejected.is_none_or(|r| &v.token != r);
        let now = || self.ambient.clock.now_unix();
        if let Some(token) = self.cache.get(sub, &key, &source, now()).filter(usable) {
            return Ok(token);
        }
        let lock = self.cache.lock(sub, &key);
        let _refreshing = lock.lock().await;
        if let Some(token) = self.cache.get(sub, &key, &source, now()).filter(usable) {
            return Ok(token);
        }
        let (vended, source) = match &self.shared {
            Some(shared) => {
                self.through_fleet(shared.as_ref(), grant, scopes, &key, source, rejected)
                    .await?
            }
            None => self.refresh(grant, scopes).await?,
        };
        self.cache.put(sub, &key, source, vended.clone(), now());
        Ok(vended)
    }

    /// Uses the refresh token at Google (the sweeper's keep-alive calls this too):
    /// a new access token, and the source it is bound to afterwards.
    pub async fn refresh(&self, grant: &Grant, scopes: Option<&ScopeSet>) -> Result<(Vended, String), ApiError> {
        let sub = grant.sub();
        let sealed = grant.refresh_token.as_ref().ok_or(ApiError::OfflineAccessRequired)?;
        let refresh_token = self
            .sealer
            .open(sub, TokenPurpose::RefreshToken, &sealed.ciphertext)
            .await?;
        let granted = match self.google.refresh(&refresh_token, scopes).await {
            Ok(granted) => granted,
            Err(TokenError::InvalidGrant) => {
                // Revoked, expired or the user removed access: dead for good.
                metric("RefreshInvalidGrant", 1.0);
                tracing::warn!("refresh token refused by Google; grant needs reauthorization");
                self.cache.forget(sub);
                let random = self.ambient.random.as_ref();
                let holding = Holding::Ciphertext(&sealed.ciphertext);
                let now = self.ambient.clock.now();
                grants::mark_dead(self.grants.as_ref(), random, sub, holding, "invalid_grant", now).await?;
                return Err(ApiError::ReauthorizationRequired);
            }
            Err(TokenError::InvalidScope) => {
                // A narrowed refresh Google would not grant: the grant itself is fine.
                let asked = scopes.map(|s| s.iter().cloned().collect()).unwrap_or_default();
                return Err(ApiError::ScopeRequired { scopes: asked });
            }
            Err(other) => {
                metric("RefreshFailed", 1.0);
                return Err(other.into());
            }
        };
        metric("RefreshSucceeded", 1.0);
        let now = self.ambient.clock.now();
        let mut source = source_of(grant).unwrap_or_default();
        if let Some(rotated) = &granted.refresh_token {
            let expires_in = granted.refresh_token_expires_in;
            let expires_at = expires_in.map(|left| now.unix_timestamp() + left.as_secs() as i64);
            if let Some(stored) = self.store_rotated(grant, sealed, rotated, expires_at).await? {
                source = source_of(&stored).unwrap_or(source);
            }
        } else if let Some(used) = grant.used(now) {
            self.record_use(&used, now.unix_timestamp()).await;
        }
        let lifetime = granted.expires_in.unwrap_or(DEFAULT_LIFETIME);
        let vended = Vended {
            token: granted.access_token,
            expires_at: now.unix_timestamp() + lifetime.as_secs() as i64,
            scopes: granted
                .scopes
                .or_else(|| scopes.cloned())
                .unwrap_or_else(|| grant.scopes.clone()),
        };
        Ok((vended, source))
    }

    /// Best effort: a use that is not recorded is recorded at the next refresh.
    async fn record_use(&self, used: &Grant, now: i64) {
        match self.grants.touch(used, now).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(err) => tracing::debug!(error = %err, "use of the refresh token not recorded"),
        }
    }

    async fn store_rotated(
        &self,
        grant: &Grant,
        old: &SealedToken,
        rotated: &Secret,
        expires_at: Option<i64>,
    ) -> Result<Option<Grant>, ApiError> {
        let sub = grant.sub();
        let now = self.ambient.clock.now();
        let now_ms = self.ambient.clock.now_unix_ms();
        let sealed = SealedToken {
            ciphertext: self.sealer.seal(sub, TokenPurpose::RefreshToken, rotated).await?,
            ids: TokenIds::of(rotated),
            issued_ms: Some(now_ms),
            expires_at,
        };
        let random = self.ambient.random.as_ref();
        let stored = grants::update(self.grants.as_ref(), random, sub, |current| {
            Ok::<_, ApiError>(
                current
                    .filter(|g| g.holds(&old.ciphertext))
                    .map(|g| g.rotated(sealed.clone(), now)),
            )
        })
        .await?;
        Ok(stored.filter(|g| g.holds(&sealed.ciphertext)))
    }
}
