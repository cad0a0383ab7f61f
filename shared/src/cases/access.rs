//! Access tokens for a user who is not there: the warm container's cached one while
//! more than five minutes of its life remain, else a refresh with the stored
//! refresh token (a rotated one is stored; `invalid_grant` marks the grant dead).
//! Serves `POST /calendar/events`, the `worker` jobs and `tokens` vending alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;

use super::grants;
use crate::error::ApiError;
use crate::google::TokenError;
use crate::grant::{Ciphertext, Grant, GrantStatus, SealedToken, TokenIds, now_rfc3339};
use crate::ports::{GrantStore, TokenEndpoint, TokenSealer};
use crate::secret::Secret;
use crate::telemetry::metric;
use crate::types::ScopeSet;

/// A token is reused (or vended) only while more than this much of its life remains.
pub const MIN_REMAINING_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Google's access tokens live an hour; assume so when `expires_in` is missing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// An access token with when it expires (Unix seconds).
#[derive(Debug, Clone)]
pub struct Vended {
    pub token: Secret,
    pub expires_at: i64,
}

pub struct AccessTokens {
    grants: Arc<dyn GrantStore>,
    sealer: Arc<dyn TokenSealer>,
    google: Arc<dyn TokenEndpoint>,
    cache: AccessTokenCache,
}

impl AccessTokens {
    pub fn new(grants: Arc<dyn GrantStore>, sealer: Arc<dyn TokenSealer>, google: Arc<dyn TokenEndpoint>) -> Self {
        Self {
            grants,
            sealer,
            google,
            cache: AccessTokenCache::default(),
        }
    }

    pub fn grants(&self) -> &Arc<dyn GrantStore> {
        &self.grants
    }

    /// The grant of `sub` if it can act offline: stored, alive, with the scopes
    /// `check` wants, and a refresh token. The order of the checks is the contract's.
    pub async fn usable_grant(
        &self,
        sub: &str,
        check: impl FnOnce(&ScopeSet) -> Result<(), ApiError>,
    ) -> Result<(Grant, SealedToken), ApiError> {
        let grant = self.grants.load(sub).await?.ok_or(ApiError::NotConnected)?;
        if grant.status == GrantStatus::ReauthorizationRequired {
            return Err(ApiError::ReauthorizationRequired);
        }
        check(&grant.scopes)?;
        let token = grant.refresh_token.clone().ok_or(ApiError::OfflineAccessRequired)?;
        Ok((grant, token))
    }

    /// A token with at least five minutes left for `sub` (`tokens`' vending).
    pub async fn vend(&self, sub: &str, required: &ScopeSet) -> Result<(Vended, ScopeSet), ApiError> {
        let (grant, _) = self
            .usable_grant(sub, |granted| match required.missing_from(granted) {
                missing if missing.is_empty() => Ok(()),
                missing => Err(ApiError::ScopeRequired { scopes: missing }),
            })
            .await?;
        let vended = self.token(&grant, None).await?;
        Ok((vended, grant.scopes))
    }

    /// The cached token while it has more than five minutes left, else a refresh.
    /// `rejected` is a token Google just refused: never handed out again. One
    /// refresh per user at a time: concurrent callers (a batch of jobs for one
    /// user) wait for it and share its token.
    pub async fn token(&self, grant: &Grant, rejected: Option<&Secret>) -> Result<Vended, ApiError> {
        let sub = grant.sub();
        let refresh_ct = &grant
            .refresh_token
            .as_ref()
            .ok_or(ApiError::OfflineAccessRequired)?
            .ciphertext;
        let usable = |v: &Vended| rejected.is_none_or(|r| &v.token != r);
        if let Some(token) = self.cache.get(grant).filter(usable) {
            return Ok(token);
        }
        let lock = self.cache.refresh_lock(sub);
        let _refreshing = lock.lock().await;
        if let Some(token) = self.cache.get(grant).filter(usable) {
            return Ok(token);
        }
        let refresh_token = self.sealer.open(sub, refresh_ct).await?;
        match self.google.refresh(&refresh_token).await {
            Ok(granted) => {
                metric("RefreshSucceeded", 1.0);
                let mut source = fingerprint(refresh_ct, grant.version);
                if let Some(rotated) = &granted.refresh_token {
                    let (stored, version) = self.store_rotated(sub, refresh_ct, rotated).await?;
                    source = fingerprint(&stored, version);
                }
                let lifetime = granted.expires_in.unwrap_or(DEFAULT_LIFETIME);
                Ok(self.cache.put(sub, source, granted.access_token, lifetime))
            }
            Err(TokenError::InvalidGrant) => {
                // Revoked, expired or the user removed access: dead for good.
                metric("RefreshInvalidGrant", 1.0);
                tracing::warn!("refresh token refused by Google; grant needs reauthorization");
                self.cache.forget(sub);
                grants::mark_dead(self.grants.as_ref(), sub, Some(refresh_ct), "invalid_grant").await?;
                Err(ApiError::ReauthorizationRequired)
            }
            Err(other) => {
                metric("RefreshFailed", 1.0);
                Err(other.into())
            }
        }
    }

    async fn store_rotated(
        &self,
        sub: &str,
        old: &Ciphertext,
        rotated: &Secret,
    ) -> Result<(Ciphertext, u64), ApiError> {
        let sealed = SealedToken {
            ciphertext: self.sealer.seal(sub, rotated).await?,
            ids: TokenIds::of(rotated),
        };
        let now = now_rfc3339();
        let stored = grants::update(self.grants.as_ref(), sub, |current| {
            Ok::<_, ApiError>(
                current
                    .filter(|g| g.holds(old))
                    .map(|g| g.rotated(sealed.clone(), &now)),
            )
        })
        .await?;
        Ok((sealed.ciphertext, stored.map_or(0, |g| g.version)))
    }
}

/// Access tokens kept in memory for the life of the warm container, keyed by user
/// and by a fingerprint of the refresh-token ciphertext they came from and the
/// grant's version then, so any change of the grant (a new sign-in, a revocation,
/// an upgrade whose new scope a cached token lacks) invalidates them. Never
/// persisted anywhere.
#[derive(Default)]
struct AccessTokenCache {
    entries: Mutex<HashMap<String, Cached>>,
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Cached {
    token: Secret,
    source: digest::Digest,
    expires: Instant,
    expires_at: i64,
}

impl AccessTokenCache {
    fn get(&self, grant: &Grant) -> Option<Vended> {
        let source = fingerprint(&grant.refresh_token.as_ref()?.ciphertext, grant.version);
        let entries = self.entries.lock().expect("access-token cache lock");
        let entry = entries.get(grant.sub())?;
        let fresh = entry.expires.saturating_duration_since(Instant::now()) > MIN_REMAINING_LIFETIME;
        (fresh && entry.source.as_ref() == source.as_ref()).then(|| Vended {
            token: entry.token.clone(),
            expires_at: entry.expires_at,
        })
    }

    fn put(&self, sub: &str, source: digest::Digest, token: Secret, lifetime: Duration) -> Vended {
        let expires_at = SystemTime::now()
            .checked_add(lifetime)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let entry = Cached {
            token: token.clone(),
            source,
            expires: Instant::now() + lifetime,
            expires_at,
        };
        self.entries
            .lock()
            .expect("access-token cache lock")
            .insert(sub.to_owned(), entry);
        Vended { token, expires_at }
    }

    fn forget(&self, sub: &str) {
        self.entries.lock().expect("access-token cache lock").remove(sub);
    }

    fn refresh_lock(&self, sub: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().expect("refresh locks");
        locks.entry(sub.to_owned()).or_default().clone()
    }
}

fn fingerprint(ciphertext: &Ciphertext, version: u64) -> digest::Digest {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&version.to_be_bytes());
    ctx.update(&ciphertext.0);
    ctx.finish()
}
