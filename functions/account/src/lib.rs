//! `GET /me` (what the frontend needs to decide whether to show "Connect Calendar")
//! and `DELETE /me/google` (revoke at Google, then crypto-shred the stored grant).

use ::http::{Method, StatusCode};
use lambda_http::Request;
use serde_json::json;
use shared::auth::{UserView, authenticate};
use shared::http::{self, Response, Route};
use shared::vault::GrantStatus;
use shared::{ApiError, App, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: false,
};
pub static ROUTES: [Route; 2] = [Route::new(Method::GET, "/me"), Route::new(Method::DELETE, "/me/google")];

pub async fn handle(app: &App, req: Request) -> Response {
    http::serve(&app.cors, &ROUTES, req, |route, req| async move {
        if route.method == Method::GET {
            me(app, req).await
        } else {
            disconnect(app, req).await
        }
    })
    .await
}

async fn me(app: &App, req: Request) -> Result<Response, ApiError> {
    let identity = authenticate(app, &req).await?;
    let grant = app.vault.get(&identity.sub).await?;
    let body = match &grant {
        None => json!({
            "user": UserView::from(&identity),
            "granted_scopes": [],
            "offline_access": false,
            "status": "not_connected",
            "updated_at": null,
        }),
        Some(grant) => json!({
            "user": UserView::from(&identity),
            "granted_scopes": grant.scopes,
            "offline_access": grant.offline_access(),
            "status": match grant.status {
                GrantStatus::Active => "active",
                GrantStatus::ReauthorizationRequired => "reauthorization_required",
            },
            "updated_at": grant.updated_at,
        }),
    };
    Ok(http::json_response(StatusCode::OK, &body))
}

/// The user asked to be forgotten: the local grant is deleted even when Google
/// cannot be reached to revoke (that is logged for operators).
async fn disconnect(app: &App, req: Request) -> Result<Response, ApiError> {
    let identity = authenticate(app, &req).await?;
    let sub = identity.sub.as_str();
    if let Some(ciphertext) = app.vault.get(sub).await?.and_then(|g| g.refresh_token) {
        match app.vault.open(sub, &ciphertext).await {
            Ok(token) => match app.oauth.revoke(&token).await {
                Ok(true) => tracing::info!("refresh token revoked at Google"),
                Ok(false) => tracing::info!("Google reported the refresh token already invalid"),
                Err(err) => {
                    tracing::error!(error = %err, "could not revoke at Google; deleting the local grant anyway")
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "could not decrypt the refresh token to revoke it; deleting the local grant anyway")
            }
        }
    }
    app.access_tokens.forget(sub);
    app.vault.delete(sub).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}
