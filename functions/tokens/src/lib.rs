//! `tokens`: short-lived access tokens for any Google API, vended by direct
//! invocation to the team's IAM-authorised backends, for a user identified by
//! their Google `sub` (README, "Acting for users from your backend"). Every
//! expected outcome is a normal payload, never a function error. The token is in
//! the response only: the log line names the `sub` and the scopes.

use serde_json::{Map, Value, json};
use shared::cases::AccessTokens;
use shared::types::ScopeSet;
use shared::{ApiError, Boot, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};

pub struct Tokens {
    access: AccessTokens,
}

impl Tokens {
    /// The table, KMS `Decrypt` (`Encrypt` for rotated tokens), the token endpoint.
    pub fn new(boot: &Boot) -> Self {
        Self::with(AccessTokens::new(boot.grants(), boot.sealer(), boot.google_oauth()))
    }

    pub fn with(access: AccessTokens) -> Self {
        Self { access }
    }

    /// `{"sub", "scopes"?}` in; a token or `{"error": {...}}` out.
    pub async fn handle(&self, request: Value) -> Value {
        let result = match read(&request) {
            Ok((sub, scopes)) => {
                shared::telemetry::record_subject(&sub);
                self.access
                    .vend(&sub, &scopes)
                    .await
                    .map(|vended| (sub, scopes, vended))
            }
            Err(err) => Err(err),
        };
        match result {
            Ok((sub, requested, (vended, granted))) => {
                shared::telemetry::metric("TokenVended", 1.0);
                tracing::info!(sub = %sub, requested = ?requested, "access token vended");
                json!({
                    "access_token": vended.token.expose(),
                    "token_type": "Bearer",
                    "expires_at": vended.expires_at,
                    "scopes": granted,
                })
            }
            Err(err) => {
                tracing::info!(code = err.code(), error = %err, "no access token vended");
                error_payload(&err)
            }
        }
    }
}

fn read(request: &Value) -> Result<(String, ScopeSet), ApiError> {
    let invalid = |why: &str| ApiError::invalid_request(why);
    let Value::Object(request) = request else {
        return Err(invalid("The request must be a JSON object."));
    };
    let sub = match request.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
        _ => return Err(invalid("'sub' must be a non-empty string.")),
    };
    let scopes = shared::http::scope_list(request, "scopes")?;
    Ok((sub, scopes))
}

/// The error payload: the status and code of the error table, `missing_scopes`
/// where scopes are missing, `retry_after` (seconds) where retrying later helps.
fn error_payload(err: &ApiError) -> Value {
    let mut error = Map::new();
    error.insert("status".into(), json!(err.status()));
    error.insert("code".into(), json!(err.code()));
    error.insert("detail".into(), json!(err.detail()));
    err.extensions(&mut error, "missing_scopes");
    if let Some(seconds) = err.retry_after() {
        error.insert("retry_after".into(), json!(seconds));
    }
    json!({ "error": error })
}
