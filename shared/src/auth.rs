//! The steps exchange and upgrade share, and bearer authentication for every
//! function: each turns Google's answers into the project's `ApiError`s.

use lambda_http::Request;
use serde::Serialize;

use crate::app::App;
use crate::config::Config;
use crate::error::ApiError;
use crate::google::{Rejection, TokenError, VerifiedIdentity};
use crate::http::{bearer, record_subject};
use crate::secret::Secret;
use crate::types::{IdToken, ScopeSet};
use crate::vault::Ciphertext;

/// Seconds clients are asked to wait when Google gave no `Retry-After`.
const DEFAULT_RETRY_AFTER: u32 = 5;

/// The verified bearer ID token of the caller.
pub async fn authenticate(app: &App, req: &Request) -> Result<VerifiedIdentity, ApiError> {
    let token = bearer(req)?;
    let identity = app.verifier.verify(&token).await.map_err(|rejection| match rejection {
        Rejection::DomainNotAllowed => ApiError::DomainNotAllowed,
        Rejection::KeysUnavailable(reason) => google_unavailable(reason, None),
        other => ApiError::Unauthenticated {
            credentials_present: true,
            reason: other.to_string(),
        },
    })?;
    record_subject(&identity.sub);
    Ok(identity)
}

/// `postmessage` (the popup code model) unless the body names an allow-listed URI.
pub fn redirect_uri(config: &Config, requested: Option<String>) -> Result<String, ApiError> {
    match requested {
        None => Ok("postmessage".to_owned()),
        Some(uri) if uri == "postmessage" || config.allowed_redirect_uris.contains(&uri) => Ok(uri),
        Some(_) => Err(ApiError::invalid_request("'redirect_uri' is not allowed.")),
    }
}

/// A redeemed authorization code: who it belongs to and what it granted. The refresh
/// token, if Google sent one, is already encrypted.
pub struct Authorized {
    pub identity: VerifiedIdentity,
    pub id_token: IdToken,
    pub scopes: ScopeSet,
    pub refresh_token: Option<Ciphertext>,
}

/// Exchanges the code, verifies the ID token that comes back and, when `expected_sub`
/// is given, refuses a code of another account before anything is encrypted or stored.
pub async fn redeem_code(
    app: &App,
    code: &Secret,
    redirect_uri: &str,
    expected_sub: Option<&str>,
) -> Result<Authorized, ApiError> {
    let grant = app.oauth.exchange_code(code, redirect_uri).await.map_err(token_error)?;
    let id_token = grant
        .id_token
        .ok_or_else(|| ApiError::Upstream("token response has no id_token (was 'openid' requested?)".into()))?;
    let identity = app
        .verifier
        .verify(&id_token)
        .await
        .map_err(|rejection| match rejection {
            Rejection::DomainNotAllowed => ApiError::DomainNotAllowed,
            Rejection::KeysUnavailable(reason) => google_unavailable(reason, None),
            other => ApiError::InvalidIdToken(other.to_string()),
        })?;
    record_subject(&identity.sub);
    if expected_sub.is_some_and(|sub| sub != identity.sub) {
        return Err(ApiError::AccountMismatch);
    }
    let refresh_token = match &grant.refresh_token {
        Some(token) => Some(app.vault.seal(&identity.sub, token).await?),
        None => None,
    };
    Ok(Authorized {
        scopes: grant.scopes.unwrap_or_default(),
        identity,
        id_token,
        refresh_token,
    })
}

/// The token endpoint's failures, for code exchanges and refreshes alike. The caller
/// handles `InvalidGrant` on refresh itself (it means reauthorization).
pub fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::InvalidGrant => ApiError::InvalidGrant,
        TokenError::RateLimited { retry_after } => google_rate_limited(retry_after),
        TokenError::Unavailable(reason) => google_unavailable(reason, None),
        TokenError::Unusable(reason) => ApiError::Upstream(reason),
    }
}

pub fn google_rate_limited(retry_after: Option<u32>) -> ApiError {
    ApiError::RateLimited {
        retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
    }
}

pub fn google_unavailable(reason: String, retry_after: Option<u32>) -> ApiError {
    ApiError::Unavailable {
        service: "Google",
        reason,
        retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
    }
}

/// The `user` object of responses: `hd` always present, `null` for consumer accounts.
#[derive(Debug, Serialize)]
pub struct UserView<'a> {
    pub sub: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub name: Option<&'a str>,
    pub picture: Option<&'a str>,
    pub hd: Option<&'a str>,
}

impl<'a> From<&'a VerifiedIdentity> for UserView<'a> {
    fn from(id: &'a VerifiedIdentity) -> Self {
        Self {
            sub: &id.sub,
            email: id.email.as_deref(),
            email_verified: id.email_verified,
            name: id.name.as_deref(),
            picture: id.picture.as_deref(),
            hd: id.hd.as_deref(),
        }
    }
}
