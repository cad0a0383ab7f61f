//! `POST /auth/upgrade`: incremental authorization. The signed-in user (bearer ID
//! token) granted more scopes with a new code; the code must belong to the same
//! account, and the grant is updated with what Google says is granted now.

use ::http::{Method, StatusCode};
use lambda_http::Request;
use serde_json::{Value, json};
use shared::auth::{authenticate, redeem_code, redirect_uri};
use shared::http::{self, Response, Route};
use shared::types::ScopeSet;
use shared::{ApiError, App, Needs, Secret};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/auth/upgrade")];

pub async fn handle(app: &App, req: Request) -> Response {
    http::serve(&app.cors, &ROUTES, req, |_, req| upgrade(app, req)).await
}

async fn upgrade(app: &App, req: Request) -> Result<Response, ApiError> {
    http::require_csrf_header(&app.cors, &req)?;
    let identity = authenticate(app, &req).await?;
    let body = http::json_object(http::json_body(&req)?)?;
    let code = Secret::new(http::required_string(&body, "code")?);
    let requested = requested_scopes(body.get("scopes"))?;
    let redirect_uri = redirect_uri(&app.config, http::optional_string(&body, "redirect_uri")?)?;

    let authorized = redeem_code(app, &code, &redirect_uri, Some(&identity.sub)).await?;
    let grant = app
        .vault
        .record_authorization(&authorized.identity, &authorized.scopes, authorized.refresh_token, true)
        .await?;

    let missing = requested.missing_from(&grant.scopes);
    if !missing.is_empty() {
        return Err(ApiError::ScopeNotGranted { missing });
    }
    Ok(http::json_response(
        StatusCode::OK,
        &json!({ "granted_scopes": grant.scopes, "offline_access": grant.offline_access() }),
    ))
}

fn requested_scopes(value: Option<&Value>) -> Result<ScopeSet, ApiError> {
    let invalid = || ApiError::invalid_request("'scopes' must be a list of strings.");
    match value {
        None | Some(Value::Null) => Ok(ScopeSet::default()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().filter(|s| !s.trim().is_empty()).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}
