//! Cross-Account Protection: apply a verified security event to the grant of the
//! user (or refresh token) it names. Delivery is at-least-once, so the event is
//! applied first and its `jti` recorded after: a crash in between means a harmless
//! re-apply on Google's retry, never a dropped event. A recorded `jti` has no
//! effect again, even after the user has connected again.
//!
//! `token-revoked` names a refresh token, found through an index that is only
//! eventually consistent: the grant is marked only while it still holds that very
//! token (a conditional write), so a token stored a moment ago is never dropped; a
//! token we cannot find is a warning and a metric (`TokenRevokedUnmatched`).

use std::sync::Arc;

use super::grants::{self, Holding};
use crate::error::ApiError;
use crate::grant::RemovalReason;
use crate::ports::{GrantStore, ReplayGuard};
use crate::security::{RiscKind, SecurityEvent, Subject};
use crate::system::Ambient;
use crate::telemetry::{metric, record_subject};
use crate::types::Sub;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Replayed,
}

pub struct SecurityEvents {
    grants: Arc<dyn GrantStore>,
    replay: Arc<dyn ReplayGuard>,
    ambient: Ambient,
}

impl SecurityEvents {
    pub fn new(grants: Arc<dyn GrantStore>, replay: Arc<dyn ReplayGuard>, ambient: Ambient) -> Self {
        Self {
            grants,
            replay,
            ambient,
        }
    }

    pub async fn apply(&self, event: &SecurityEvent) -> Result<Outcome, ApiError> {
        if self.replay.seen(&event.jti).await? {
            tracing::info!(jti = %event.jti, "security event already processed");
            return Ok(Outcome::Replayed);
        }
        for (kind, subject) in &event.events {
            match subject {
                Subject::Sub(sub) => {
                    record_subject(sub.as_str());
                    self.apply_one(kind, sub, Holding::Any).await?;
                    tracing::warn!(jti = %event.jti, event = kind.name(), "security event applied");
                }
                Subject::Token(lookup) => {
                    let applied = match self.grants.find_by_token(lookup).await? {
                        Some(sub) => {
                            record_subject(sub.as_str());
                            self.apply_one(kind, &sub, Holding::Token(lookup)).await?
                        }
                        None => false,
                    };
                    if applied {
                        tracing::warn!(jti = %event.jti, event = kind.name(), "security event applied");
                    } else {
                        metric("TokenRevokedUnmatched", 1.0);
                        tracing::warn!(jti = %event.jti, event = kind.name(), "security event names a refresh token no grant holds");
                    }
                }
                Subject::None => {
                    tracing::info!(jti = %event.jti, event = kind.name(), "security event for no grant we hold");
                }
            }
        }
        self.replay.record(&event.jti).await?;
        metric("SecurityEventApplied", 1.0);
        Ok(Outcome::Applied)
    }

    /// Whether the grant changed (or needed no change).
    async fn apply_one(&self, kind: &RiscKind, sub: &Sub, holding: Holding<'_>) -> Result<bool, ApiError> {
        let random = self.ambient.random.as_ref();
        match kind {
            RiscKind::TokensRevoked
            | RiscKind::TokenRevoked
            | RiscKind::SessionsRevoked
            | RiscKind::AccountDisabled => {
                let reason = format!("risc:{}", kind.name());
                let now = self.ambient.clock.now();
                Ok(grants::mark_dead(self.grants.as_ref(), random, sub, holding, &reason, now).await?)
            }
            RiscKind::AccountPurged => {
                let reason = RemovalReason::AccountPurged;
                grants::remove(
                    self.grants.as_ref(),
                    random,
                    sub,
                    reason,
                    |grant| async move { Ok(grant) },
                )
                .await?;
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}
