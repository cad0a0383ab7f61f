//! `DELETE /me/google`: revoke the refresh token at Google, then delete the grant.
//! Only Google can make a refresh token useless, so when Google cannot be reached
//! the grant stays and the caller is told to retry; the delete is conditional on
//! the grant that was revoked, so a token stored meanwhile by a concurrent sign-in
//! is revoked too (on the next round) and never deleted unrevoked.
//!
//! One exception: a refresh token no key can decrypt any more (its KMS key deleted,
//! or the ciphertext damaged) cannot be revoked by us. Keeping it would keep the
//! user from ever disconnecting, so the grant is deleted, the case counted
//! (`DisconnectWithoutRevoke`, alarmed) and the user can remove the access in their
//! Google account (docs/security.md, "A disconnect whose token cannot be decrypted").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::grants;
use crate::error::ApiError;
use crate::grant::{RemovalReason, TokenPurpose};
use crate::ports::{GrantStore, StoreError, TokenEndpoint, TokenSealer};
use crate::secret::Secret;
use crate::system::Ambient;
use crate::telemetry::metric;
use crate::types::Sub;
use crate::upstream::TokenError;

pub struct Disconnect {
    grants: Arc<dyn GrantStore>,
    sealer: Arc<dyn TokenSealer>,
    google: Arc<dyn TokenEndpoint>,
    ambient: Ambient,
}

impl Disconnect {
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
            ambient,
        }
    }

    /// Idempotent: no grant is success.
    pub async fn run(&self, sub: &Sub) -> Result<(), ApiError> {
        let unrevoked = AtomicBool::new(false);
        let random = self.ambient.random.as_ref();
        grants::remove(self.grants.as_ref(), random, sub, RemovalReason::User, |grant| {
            let unrevoked = &unrevoked;
            async move {
                unrevoked.store(false, Ordering::Relaxed);
                let Some(sealed) = &grant.refresh_token else {
                    return Ok(grant);
                };
                match self.sealer.open(sub, TokenPurpose::RefreshToken, &sealed.ciphertext).await {
                    Ok(token) => self.revoke(&token).await?,
                    Err(StoreError::Undecryptable(why)) => {
                        tracing::error!(reason = %why, "stored refresh token cannot be decrypted; deleting the grant without revoking it");
                        unrevoked.store(true, Ordering::Relaxed);
                    }
                    Err(other) => return Err(other.into()),
                }
                Ok(grant)
            }
        })
        .await?;
        if unrevoked.load(Ordering::Relaxed) {
            metric("DisconnectWithoutRevoke", 1.0);
        }
        Ok(())
    }

    async fn revoke(&self, token: &Secret) -> Result<(), ApiError> {
        match self.google.revoke(token).await {
            Ok(true) => tracing::info!("refresh token revoked at Google"),
            Ok(false) => tracing::info!("Google reported the refresh token already invalid"),
            Err(TokenError::Unavailable(reason)) => return Err(ApiError::google_unavailable(reason)),
            Err(TokenError::RateLimited { retry_after }) => {
                return Err(ApiError::Unavailable {
                    service: "Google",
                    reason: "revoke rate-limited".into(),
                    retry_after: retry_after.unwrap_or(crate::error::DEFAULT_RETRY_AFTER).max(1),
                });
            }
            Err(refused) => {
                // A 4xx other than invalid_token: the grant stays, and someone should look.
                metric("RevokeRefused", 1.0);
                tracing::error!(error = %refused, "Google refused to revoke the refresh token; grant kept");
                return Err(refused.into());
            }
        }
        Ok(())
    }
}
