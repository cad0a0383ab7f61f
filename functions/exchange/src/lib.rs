//! `POST /auth/exchange`: a one-time Google authorization code (popup code model,
//! offline access) becomes a verified identity and a KMS-encrypted refresh token.

use ::http::{Method, StatusCode};
use lambda_http::Request;
use serde_json::json;
use shared::auth::{UserView, redeem_code, redirect_uri};
use shared::http::{self, Response, Route};
use shared::{ApiError, App, Needs, Secret};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/auth/exchange")];

pub async fn handle(app: &App, req: Request) -> Response {
    http::serve(&app.cors, &ROUTES, req, |_, req| exchange(app, req)).await
}

async fn exchange(app: &App, req: Request) -> Result<Response, ApiError> {
    http::require_csrf_header(&app.cors, &req)?;
    let body = http::json_object(http::json_body(&req)?)?;
    let code = Secret::new(http::required_string(&body, "code")?);
    let redirect_uri = redirect_uri(&app.config, http::optional_string(&body, "redirect_uri")?)?;

    let authorized = redeem_code(app, &code, &redirect_uri, None).await?;
    let grant = app
        .vault
        .record_authorization(
            &authorized.identity,
            &authorized.scopes,
            authorized.refresh_token,
            false,
        )
        .await?;

    Ok(http::json_response(
        StatusCode::OK,
        &json!({
            "user": UserView::from(&authorized.identity),
            "granted_scopes": grant.scopes,
            "offline_access": grant.offline_access(),
            "id_token": authorized.id_token.as_str(),
            "id_token_expires_at": authorized.identity.expires_at,
        }),
    ))
}
