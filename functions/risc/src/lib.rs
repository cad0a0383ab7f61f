//! `POST /risc`: Google Cross-Account Protection receiver (RFC 8935 push delivery).
//! A verified security event token about a user we hold makes us stop using their
//! tokens at once. Mapping of event types to effects (also in the README):
//!
//! | event | effect on the grant |
//! |---|---|
//! | `tokens-revoked`, `token-revoked`, `sessions-revoked`, `account-disabled` | refresh token dropped, status `reauthorization_required` |
//! | `account-purged` | grant deleted (`not_connected`) |
//! | `account-credential-change-required`, `account-enabled`, `verification`, others | none (logged) |

use ::http::{Method, StatusCode};
use lambda_http::Request;
use serde_json::json;
use shared::google::{RiscRejection, SecurityEvent};
use shared::http::{self, Response, Route};
use shared::{ApiError, App, Needs};

pub const NEEDS: Needs = Needs {
    kms: false,
    client_secret: false,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/risc")];

pub async fn handle(app: &App, req: Request) -> Response {
    http::serve(&app.cors, &ROUTES, req, |_, req| receive(app, req)).await
}

async fn receive(app: &App, req: Request) -> Result<Response, ApiError> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > http::MAX_BODY_BYTES {
        return Ok(set_error("invalid_request", "security event token too large"));
    }
    let token = std::str::from_utf8(body).unwrap_or("");
    let event = match app.risc.verify(token).await {
        Ok(event) => event,
        Err(RiscRejection::InvalidRequest(why)) => return Ok(set_error("invalid_request", &why)),
        Err(RiscRejection::AuthenticationFailed(why)) => {
            return Ok(set_error("authentication_failed", &why));
        }
        // Google retries deliveries that fail with 5xx.
        Err(RiscRejection::KeysUnavailable(reason)) => {
            return Err(shared::auth::google_unavailable(reason, None));
        }
    };
    if !app.vault.remember_jti(&event.jti).await? {
        tracing::info!(jti = %event.jti, "security event already processed");
        return Ok(http::empty(StatusCode::ACCEPTED));
    }
    if let Err(err) = apply(app, &event).await {
        // Let Google's retry of this jti be processed rather than taken for a replay.
        if let Err(forget) = app.vault.forget_jti(&event.jti).await {
            tracing::error!(error = %forget, "could not forget jti after a failed event");
        }
        return Err(err);
    }
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn apply(app: &App, event: &SecurityEvent) -> Result<(), ApiError> {
    for (kind, sub) in &event.events {
        let Some(sub) = sub else {
            tracing::info!(jti = %event.jti, event = %kind, "security event without subject accepted");
            continue;
        };
        http::record_subject(sub);
        match kind.as_str() {
            "tokens-revoked" | "token-revoked" | "sessions-revoked" | "account-disabled" => {
                app.access_tokens.forget(sub);
                app.vault.mark_reauthorization_required(sub, None).await?;
                tracing::warn!(jti = %event.jti, event = %kind, "grant marked reauthorization_required");
            }
            "account-purged" => {
                app.access_tokens.forget(sub);
                app.vault.delete(sub).await?;
                tracing::warn!(jti = %event.jti, event = %kind, "grant deleted");
            }
            _ => {
                tracing::info!(jti = %event.jti, event = %kind, "security event accepted; no change")
            }
        }
    }
    Ok(())
}

/// RFC 8935 §2.3 error body.
fn set_error(code: &str, description: &str) -> Response {
    http::json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "err": code, "description": description }),
    )
}
