//! `/emulator/...`: the library API over HTTP, for scripts driving the binary.
//!
//! Bodies are parsed as JSON whatever their `Content-Type`, so a bare
//! `curl -d '{...}'` works.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::certs::RISC_ISSUER;
use crate::config::{AppPlatform, CodeRequestBody};
use crate::faults::{Fault, FaultBody};
use crate::keys::{self, Signer};
use crate::server::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/config", get(config))
        .route("/codes", post(mint_code))
        .route("/accounts", get(accounts))
        .route("/id-token", post(id_token))
        .route("/sign", post(sign))
        .route("/risc", post(risc))
        .route("/faults", post(inject))
        .route("/hits", get(hits))
        .route("/hits/refreshes", get(refresh_hits))
        .route("/hits/reset", post(reset_hits))
        .route("/barriers", get(barriers))
        .route("/keys/rotate", post(rotate))
        .route("/events", get(events))
        .route("/users/{sub}/revoke", post(revoke_user))
        .route("/users/{sub}/expire-access-tokens", post(expire_access_tokens))
        .route("/users/{sub}/expire-refresh-tokens", post(expire_refresh_tokens))
        .route("/issued-secrets", get(issued_secrets))
        .route("/reset", post(reset))
}

/// A control request the emulator cannot act on: 400 with the reason.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({"error": self.0}))).into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|error| BadRequest(format!("invalid request body: {error}")))
}

async fn config(State(shared): State<Shared>) -> Json<Value> {
    let state = lock(&shared);
    Json(json!({
        "client_id": state.config.client_id,
        "client_secret": state.config.client_secret,
        "current_kid": state.current_key().kid(),
        "risc_issuer": RISC_ISSUER,
        "risc_kid": keys::risc_key().kid(),
        "publishing_status": state.config.publishing_status,
    }))
}

async fn mint_code(State(shared): State<Shared>, body: Bytes) -> Result<Json<Value>, BadRequest> {
    let request = parse::<CodeRequestBody>(&body)?;
    let code = lock(&shared).mint_code(request.into());
    Ok(Json(json!({"code": code})))
}

/// The test accounts the consent popup offers (`/gsi/client`).
async fn accounts() -> Json<Value> {
    Json(json!(crate::gis::TEST_ACCOUNTS))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdTokenBody {
    sub: String,
    claims: Option<Value>,
    /// With `app_client_id`: the ID token a phone app gets at sign-in.
    platform: Option<AppPlatform>,
    app_client_id: Option<String>,
}

async fn id_token(State(shared): State<Shared>, body: Bytes) -> Result<Json<Value>, BadRequest> {
    let body = parse::<IdTokenBody>(&body)?;
    let state = lock(&shared);
    let token = match (body.platform, body.app_client_id) {
        (None, None) => state.id_token(&body.sub, body.claims.as_ref()),
        (Some(platform), Some(app)) if !app.is_empty() => {
            state.app_id_token(&body.sub, platform, &app, body.claims.as_ref())
        }
        _ => {
            let reason = "\"platform\" and a non-empty \"app_client_id\" go together";
            return Err(BadRequest(reason.to_owned()));
        }
    };
    Ok(Json(json!({"id_token": token})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    header: Value,
    claims: Value,
    signer: Signer,
}

async fn sign(State(shared): State<Shared>, body: Bytes) -> Result<Json<Value>, BadRequest> {
    let body = parse::<SignBody>(&body)?;
    let jwt = lock(&shared).sign_jwt(&body.header, &body.claims, body.signer);
    Ok(Json(json!({"jwt": jwt})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RiscBody {
    event_type: String,
    sub: String,
}

async fn risc(State(shared): State<Shared>, body: Bytes) -> Result<Json<Value>, BadRequest> {
    let body = parse::<RiscBody>(&body)?;
    let (set, jti) = lock(&shared).risc_set(&body.event_type, &body.sub);
    Ok(Json(json!({"set": set, "jti": jti})))
}

async fn inject(State(shared): State<Shared>, body: Bytes) -> Result<Json<Value>, BadRequest> {
    let fault = Fault::try_from(parse::<FaultBody>(&body)?).map_err(BadRequest)?;
    lock(&shared).faults.push(fault);
    Ok(Json(json!({})))
}

async fn hits(State(shared): State<Shared>) -> Json<Value> {
    Json(json!(lock(&shared).hits))
}

async fn refresh_hits(State(shared): State<Shared>) -> Json<Value> {
    Json(json!(lock(&shared).refresh_hits))
}

async fn barriers(State(shared): State<Shared>) -> Json<Value> {
    Json(json!(lock(&shared).barriers))
}

async fn reset_hits(State(shared): State<Shared>) -> Json<Value> {
    lock(&shared).reset_hits();
    Json(json!({}))
}

async fn rotate(State(shared): State<Shared>) -> Json<Value> {
    let mut state = lock(&shared);
    state.rotate_keys();
    Json(json!({"kid": state.current_key().kid()}))
}

#[derive(Deserialize)]
struct EventsQuery {
    sub: String,
    #[serde(rename = "calendarId", default = "primary")]
    calendar_id: String,
}

fn primary() -> String {
    "primary".to_owned()
}

async fn events(State(shared): State<Shared>, Query(query): Query<EventsQuery>) -> Json<Value> {
    let state = lock(&shared);
    let stored = state.events.get(&(query.sub, query.calendar_id));
    Json(json!(stored.cloned().unwrap_or_default()))
}

async fn revoke_user(State(shared): State<Shared>, Path(sub): Path<String>) -> Json<Value> {
    Json(json!({"revoked": lock(&shared).revoke_user(&sub)}))
}

async fn expire_access_tokens(State(shared): State<Shared>, Path(sub): Path<String>) -> Json<Value> {
    lock(&shared).expire_access_tokens(&sub);
    Json(json!({}))
}

async fn expire_refresh_tokens(State(shared): State<Shared>, Path(sub): Path<String>) -> Json<Value> {
    Json(json!({"expired": lock(&shared).expire_refresh_tokens(&sub)}))
}

async fn issued_secrets(State(shared): State<Shared>) -> Json<Value> {
    Json(json!(lock(&shared).issued))
}

async fn reset(State(shared): State<Shared>) -> Json<Value> {
    lock(&shared).reset();
    Json(json!({}))
}
