//! Redeem a one-time authorization code: exchange it, verify the ID token Google
//! returns, seal the refresh token and record the grant. For a sign-in
//! (`exchange`) and for incremental authorization (`upgrade`), where the code must
//! belong to the signed-in user and a refresh token must end up stored. Nothing is
//! written before the ID token is verified.

use std::sync::Arc;

use super::grants;
use crate::error::{ApiError, TokenSource};
use crate::grant::{DAY, Grant, SealedToken, TokenIds, TokenPurpose};
use crate::identity::VerifiedIdentity;
use crate::ports::{GrantStore, IdTokens, TokenEndpoint, TokenSealer};
use crate::secret::Secret;
use crate::system::Ambient;
use crate::telemetry::metric;
use crate::types::{IdToken, ScopeSet, Sub};

/// A refresh token Google will end this soon is worth a warning: a consent screen
/// still in Testing gives 7-day tokens.
const SHORT_LIVED: i64 = 7 * DAY;

pub struct SignIn {
    google: Arc<dyn TokenEndpoint>,
    id_tokens: Arc<dyn IdTokens>,
    sealer: Arc<dyn TokenSealer>,
    grants: Arc<dyn GrantStore>,
    ambient: Ambient,
}

/// A redeemed code: who it belongs to, the ID token that proves it, and the grant
/// as stored afterwards.
pub struct SignedIn {
    pub identity: VerifiedIdentity,
    pub id_token: IdToken,
    pub grant: Grant,
}

impl SignIn {
    pub fn new(
        google: Arc<dyn TokenEndpoint>,
        id_tokens: Arc<dyn IdTokens>,
        sealer: Arc<dyn TokenSealer>,
        grants: Arc<dyn GrantStore>,
        ambient: Ambient,
    ) -> Self {
        Self {
            google,
            id_tokens,
            sealer,
            grants,
            ambient,
        }
    }

    /// First sign-in or a later one: an online-only code is fine.
    pub async fn exchange(&self, code: &Secret, redirect_uri: &str) -> Result<SignedIn, ApiError> {
        let result = self.redeem(code, redirect_uri, None).await;
        metric(
            if result.is_ok() {
                "CodeExchanged"
            } else {
                "CodeExchangeFailed"
            },
            1.0,
        );
        result
    }

    /// Incremental authorization for the user `sub`: the code must be theirs, a
    /// refresh token must be stored afterwards, and every `requested` scope granted
    /// (what was granted is stored either way).
    pub async fn upgrade(
        &self,
        sub: &Sub,
        code: &Secret,
        redirect_uri: &str,
        requested: &ScopeSet,
    ) -> Result<Grant, ApiError> {
        let signed_in = self.redeem(code, redirect_uri, Some(sub)).await?;
        let missing = requested.missing_from(&signed_in.grant.scopes);
        if !missing.is_empty() {
            return Err(ApiError::ScopeNotGranted { missing });
        }
        Ok(signed_in.grant)
    }

    async fn redeem(&self, code: &Secret, redirect_uri: &str, expected: Option<&Sub>) -> Result<SignedIn, ApiError> {
        let granted = self.google.exchange_code(code, redirect_uri).await?;
        let id_token = granted
            .id_token
            .ok_or_else(|| ApiError::Upstream("token response has no id_token (was 'openid' requested?)".into()))?;
        let identity = self
            .id_tokens
            .verify(&id_token)
            .await
            .map_err(|r| ApiError::from_rejection(r, TokenSource::Exchange))?;
        let sub = identity.sub().clone();
        crate::telemetry::record_subject(sub.as_str());
        if expected.is_some_and(|expected| expected != &sub) {
            return Err(ApiError::AccountMismatch);
        }
        let now = self.ambient.clock.now();
        let now_ms = self.ambient.clock.now_unix_ms();
        let sealed = match &granted.refresh_token {
            Some(token) => Some(SealedToken {
                ciphertext: self.sealer.seal(&sub, TokenPurpose::RefreshToken, token).await?,
                ids: TokenIds::of(token),
                issued_ms: Some(now_ms),
                expires_at: granted
                    .refresh_token_expires_in
                    .map(|left| now.unix_timestamp() + left.as_secs() as i64),
            }),
            None => None,
        };
        let scopes = granted.scopes.unwrap_or_default();
        let require_offline = expected.is_some();
        let grant = grants::update(self.grants.as_ref(), self.ambient.random.as_ref(), &sub, |current| {
            let next = Grant::authorized(current, &identity.profile, &scopes, sealed.as_ref(), now);
            if require_offline && next.refresh_token.is_none() {
                return Err(ApiError::OfflineAccessRequired);
            }
            Ok(Some(next))
        })
        .await?
        .ok_or_else(|| ApiError::internal("grant missing after write"))?;
        if let Some(hours) = sealed
            .as_ref()
            .and_then(|t| t.expires_at)
            .and_then(|expires_at| hours_left_if_short_lived(expires_at, now.unix_timestamp()))
        {
            warn_short_lived(hours);
        }
        Ok(SignedIn {
            identity,
            id_token,
            grant,
        })
    }
}

/// The hours left of a refresh token Google ends at `expires_at`, when so few that
/// the warning below is worth it.
fn hours_left_if_short_lived(expires_at: i64, now: i64) -> Option<i64> {
    let left = expires_at - now;
    (left <= SHORT_LIVED).then_some(left / 3600)
}

fn warn_short_lived(hours: i64) {
    metric("GrantExpiresSoon", 1.0);
    tracing::warn!(
        expires_in_hours = hours,
        "Google will end this refresh token within 7 days: the user granted time-limited access, \
         or the OAuth consent screen is still in Testing (publish the app to get long-lived tokens)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_ending_within_seven_days_are_worth_a_warning() {
        let now = 1_900_000_000;
        assert_eq!(hours_left_if_short_lived(now + 3600, now), Some(1));
        assert_eq!(
            hours_left_if_short_lived(now + 7 * DAY, now),
            Some(168),
            "a Testing app's 7-day token"
        );
        assert_eq!(hours_left_if_short_lived(now + 7 * DAY + 1, now), None);
        assert_eq!(hours_left_if_short_lived(now + 180 * DAY, now), None);
    }
}
