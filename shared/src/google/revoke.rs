//! Token revocation at Google's revoke endpoint, and the [`TokenEndpoint`] port of
//! [`OAuthClient`] (exchange and refresh live in `oauth`).

use async_trait::async_trait;

use super::oauth::{OAuthClient, TokenError, TokenGrant};
use crate::outbound::{self, Attempt, retry, retry_after};
use crate::ports::TokenEndpoint;
use crate::secret::Secret;
use crate::types::ScopeSet;

impl OAuthClient {
    /// Revokes a token (and with it the user's grant) at Google. `Ok(false)` when
    /// Google says the token was already invalid, which is fine for a disconnect.
    /// Revoking is idempotent, so every failure to get an answer may be retried.
    pub async fn revoke(&self, token: &Secret) -> Result<bool, TokenError> {
        retry("revoke", |_| async {
            let request = self.http.post(&self.revoke_url).form(&[("token", token.expose())]);
            let response = match outbound::send(&self.http, self.timeout, request).await {
                Ok(response) => response,
                Err(transport) => return Attempt::Retry(TokenError::Unavailable(transport.to_string()), None),
            };
            let status = response.status();
            if status.is_success() {
                return Attempt::Done(Ok(true));
            }
            if status.as_u16() == 429 {
                let after = retry_after(response.headers());
                return Attempt::Done(Err(TokenError::RateLimited { retry_after: after }));
            }
            if status.is_server_error() {
                return Attempt::Retry(TokenError::Unavailable(format!("revoke answered {status}")), None);
            }
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            Attempt::Done(match body["error"].as_str() {
                Some("invalid_token") => Ok(false),
                _ => Err(TokenError::Unusable(format!("revoke answered {status}"))),
            })
        })
        .await
    }
}

#[async_trait]
impl TokenEndpoint for OAuthClient {
    async fn exchange_code(&self, code: &Secret, redirect_uri: &str) -> Result<TokenGrant, TokenError> {
        OAuthClient::exchange_code(self, code, redirect_uri).await
    }

    async fn refresh(&self, refresh_token: &Secret, scopes: Option<&ScopeSet>) -> Result<TokenGrant, TokenError> {
        OAuthClient::refresh(self, refresh_token, scopes).await
    }

    async fn revoke(&self, token: &Secret) -> Result<bool, TokenError> {
        OAuthClient::revoke(self, token).await
    }
}
