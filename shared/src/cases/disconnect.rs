//! `DELETE /me/google`: revoke the refresh token at Google, then delete the grant.
//! Only Google can make a refresh token useless, so when Google cannot be reached
//! the grant stays and the caller is told to retry; the delete is conditional on
//! the grant that was revoked, so a token stored meanwhile by a concurrent sign-in
//! is revoked too (on the next round) and never deleted unrevoked.

use std::sync::Arc;

use crate::error::ApiError;
use crate::google::TokenError;
use crate::ports::{GrantStore, StoreError, TokenEndpoint, TokenSealer};

/// Rounds of revoke-then-delete before giving up on a grant that keeps changing.
const MAX_ROUNDS: u32 = 5;

pub struct Disconnect {
    grants: Arc<dyn GrantStore>,
    sealer: Arc<dyn TokenSealer>,
    google: Arc<dyn TokenEndpoint>,
}

impl Disconnect {
    pub fn new(grants: Arc<dyn GrantStore>, sealer: Arc<dyn TokenSealer>, google: Arc<dyn TokenEndpoint>) -> Self {
        Self { grants, sealer, google }
    }

    /// Idempotent: no grant is success.
    pub async fn run(&self, sub: &str) -> Result<(), ApiError> {
        for _ in 0..MAX_ROUNDS {
            let Some(grant) = self.grants.load(sub).await? else {
                return Ok(());
            };
            if let Some(sealed) = &grant.refresh_token {
                let token = self.sealer.open(sub, &sealed.ciphertext).await?;
                match self.google.revoke(&token).await {
                    Ok(true) => tracing::info!("refresh token revoked at Google"),
                    Ok(false) => tracing::info!("Google reported the refresh token already invalid"),
                    Err(TokenError::Unavailable(reason)) => return Err(ApiError::google_unavailable(reason)),
                    Err(TokenError::RateLimited { retry_after }) => {
                        let mut err = ApiError::google_unavailable("revoke rate-limited");
                        if let (ApiError::Unavailable { retry_after: r, .. }, Some(after)) = (&mut err, retry_after) {
                            *r = after;
                        }
                        return Err(err);
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            match self.grants.remove(&grant, "user").await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => tracing::info!("grant changed while disconnecting; again"),
                Err(other) => return Err(other.into()),
            }
        }
        Err(ApiError::internal("grant kept changing while disconnecting"))
    }
}
