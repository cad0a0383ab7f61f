//! Cross-Account Protection: apply a verified security event to the grant of the
//! user (or refresh token) it names. Delivery is at-least-once, so the event is
//! applied first and its `jti` recorded after: a crash in between means a harmless
//! re-apply on Google's retry, never a dropped event. A recorded `jti` has no
//! effect again, even after the user has connected again.

use std::sync::Arc;

use super::grants;
use crate::error::ApiError;
use crate::google::{RiscKind, SecurityEvent, Subject};
use crate::ports::{GrantStore, ReplayGuard, StoreError};
use crate::telemetry::{metric, record_subject};

/// Rounds of delete attempts for a grant that keeps changing under a purge.
const MAX_ROUNDS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Replayed,
}

pub struct SecurityEvents {
    grants: Arc<dyn GrantStore>,
    replay: Arc<dyn ReplayGuard>,
}

impl SecurityEvents {
    pub fn new(grants: Arc<dyn GrantStore>, replay: Arc<dyn ReplayGuard>) -> Self {
        Self { grants, replay }
    }

    pub async fn apply(&self, event: &SecurityEvent) -> Result<Outcome, ApiError> {
        if self.replay.seen(&event.jti).await? {
            tracing::info!(jti = %event.jti, "security event already processed");
            return Ok(Outcome::Replayed);
        }
        for (kind, subject) in &event.events {
            let sub = match subject {
                Subject::Sub(sub) => Some(sub.clone()),
                Subject::Token(lookup) => self.grants.find_by_token(lookup).await?,
                Subject::None => None,
            };
            let Some(sub) = sub else {
                tracing::info!(jti = %event.jti, event = kind.name(), "security event for no grant we hold");
                continue;
            };
            record_subject(&sub);
            self.apply_one(kind, &sub).await?;
            tracing::warn!(jti = %event.jti, event = kind.name(), "security event applied");
        }
        self.replay.record(&event.jti).await?;
        metric("SecurityEventApplied", 1.0);
        Ok(Outcome::Applied)
    }

    async fn apply_one(&self, kind: &RiscKind, sub: &str) -> Result<(), ApiError> {
        let reason = format!("risc:{}", kind.name());
        match kind {
            RiscKind::TokensRevoked
            | RiscKind::TokenRevoked
            | RiscKind::SessionsRevoked
            | RiscKind::AccountDisabled => {
                grants::mark_dead(self.grants.as_ref(), sub, None, &reason).await?;
            }
            RiscKind::AccountPurged => {
                for _ in 0..MAX_ROUNDS {
                    let Some(grant) = self.grants.load(sub).await? else {
                        return Ok(());
                    };
                    match self.grants.remove(&grant, &reason).await {
                        Err(StoreError::Conflict) => continue,
                        other => return Ok(other?),
                    }
                }
                return Err(ApiError::internal("grant kept changing while purging"));
            }
            _ => {}
        }
        Ok(())
    }
}
