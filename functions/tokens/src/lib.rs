//! `tokens`: short-lived access tokens for any Google API, vended by direct
//! invocation to the team's IAM-authorised backends, for a user identified by
//! their Google `sub` (docs/api.md, "Acting for users from your backend"). A vended token
//! carries exactly the requested scopes (every granted one without `scopes`). Every
//! expected outcome is a normal payload, never a function error. The token is in
//! the response only: the log line names the `sub` and the scopes.

use lambda_http::lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::cases::AccessTokens;
use shared::entry::{self, Entry, ErrorPayload, Outcome};
use shared::grant::unix_rfc3339;
use shared::types::{ScopeSet, Sub};
use shared::{ApiError, Boot, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};

/// What a backend asks for.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    pub sub: String,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A vended access token.
#[derive(Debug, Serialize)]
pub struct VendedToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Unix seconds.
    pub expires_at: i64,
    /// What the token carries, as Google named it.
    pub scopes: ScopeSet,
    /// When Google will end the grant (RFC 3339), if it said.
    pub grant_expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TokenResponse {
    Token(VendedToken),
    Error(ErrorPayload),
}

pub struct Tokens {
    access: AccessTokens,
}

impl Tokens {
    /// The table, KMS (refresh and shared access tokens), the token endpoint.
    pub fn new(boot: &Boot) -> Self {
        Self::with(boot.access_tokens())
    }

    pub fn with(access: AccessTokens) -> Self {
        Self { access }
    }

    /// Any JSON in (a request that is not a [`TokenRequest`] is answered
    /// `invalid_request`, not failed); a token or `{"error": {...}}` out.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> TokenResponse {
        let entry = Entry::of("invoke", &event.context);
        entry::invocation(entry, self.vend(event.payload), |response| match response {
            TokenResponse::Token(_) => Outcome::ok(),
            TokenResponse::Error(payload) => Outcome {
                code: payload.error["code"].as_str().unwrap_or("error").to_owned().into(),
                status: payload.error["status"].as_u64().map(|s| s as u16),
            },
        })
        .await
    }

    pub async fn vend(&self, request: Value) -> TokenResponse {
        let result = match read(request) {
            Ok((sub, scopes)) => {
                shared::telemetry::record_subject(sub.as_str());
                self.access.vend(&sub, &scopes).await.map(|vended| (scopes, vended))
            }
            Err(err) => Err(err),
        };
        match result {
            Ok((requested, (vended, grant))) => {
                shared::telemetry::metric("TokenVended", 1.0);
                tracing::info!(requested = ?requested, carried = ?vended.scopes, "access token vended");
                TokenResponse::Token(VendedToken {
                    access_token: vended.token.expose().to_owned(),
                    token_type: "Bearer",
                    expires_at: vended.expires_at,
                    scopes: vended.scopes,
                    grant_expires_at: grant.expires_at().and_then(unix_rfc3339),
                })
            }
            Err(err) => {
                tracing::info!(code = err.code(), error = %err, "no access token vended");
                TokenResponse::Error(ErrorPayload::from(&err))
            }
        }
    }
}

fn read(request: Value) -> Result<(Sub, ScopeSet), ApiError> {
    let request: TokenRequest = serde_json::from_value(request).map_err(|_| {
        ApiError::invalid_request("The request must be {\"sub\": \"...\", \"scopes\": [\"...\"]} ('scopes' optional).")
    })?;
    let sub = Sub::parse(&request.sub)
        .ok_or_else(|| ApiError::invalid_request("'sub' must be a Google sub: 1-255 visible ASCII characters."))?;
    let scopes = request.scopes.unwrap_or_default();
    if scopes.iter().any(|s| s.trim().is_empty()) {
        return Err(ApiError::invalid_request(
            "'scopes' must be a list of non-empty strings.",
        ));
    }
    Ok((sub, scopes.iter().collect()))
}
