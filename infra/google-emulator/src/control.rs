//! `/emulator/...`: the library API over HTTP, for scripts driving the binary.
//!
//! Bodies are parsed as JSON whatever their `Content-Type`, so a bare
//! `curl -d '{...}'` works. A body the emulator cannot act on is answered 400
//! `{"error": "<reason>"}`.
//!
//! | route | body → answer |
//! |---|---|
//! | `GET /emulator/config` | → `{client_id, client_secret, current_kid, risc_issuer, risc_kid, publishing_status}` (`"in_production"` or `"testing"`) |
//! | `POST /emulator/codes` | [`crate::CodeRequest`] as JSON: `{sub, email?, email_verified?, name?, picture?, hd?, scopes?, offline?, consent?, include_granted_scopes?, redirect_uri?, id_token_claims?, raw_id_token?, refresh_token_lifetime_secs?, app_client_id?}` → `{code}`. `refresh_token_lifetime_secs`: time-based access (the exchange and each refresh answer `refresh_token_expires_in`; `invalid_grant` after it). `app_client_id`: a phone app's server auth code (`redirect_uri` then defaults to `""`; the exchange's ID token has `aud` = web client, `azp` = the app) |
//! | `GET /emulator/accounts` | → the consent popup's test accounts |
//! | `POST /emulator/id-token` | `{sub, claims?, platform?, app_client_id?}` → `{id_token}`; with `platform` `"android"` (`aud` = web client, `azp` = app) or `"ios"` (`aud` = `azp` = app) and `app_client_id`, the ID token a phone app gets at sign-in; `claims` are merged last (`null` removes one) |
//! | `POST /emulator/sign` | `{header, claims, signer}` → `{jwt}` |
//! | `POST /emulator/risc` | `{event_type, sub}` → `{set, jti}` |
//! | `POST /emulator/faults` | `{endpoint, kind, count?, calendar?, ...}` → `{}`; `endpoint`: `token`, `jwks`, `revoke`, `calendar_insert`, `calendar_get`, `risc_jwks`; `kind`: `status` (`status`, `body?`, `retry_after?`), `latency` (`latency_ms`), `drop_before`, `drop_after`, `barrier` (`parties`, `timeout_ms?` default 15000; `count` defaults to `parties`: each request is held until `parties` of them are in flight, see [`crate::FaultKind::Barrier`]) |
//! | `GET /emulator/hits` | → requests per endpoint ([`crate::Hits`], numbers only) |
//! | `GET /emulator/hits/refreshes` | → `{"by_user": {sub: n}, "by_user_and_scope": {sub: {scope: n}}}` ([`crate::RefreshHits`]; scope `""` = a refresh without `scope`) |
//! | `GET /emulator/barriers` | → `{"released": n, "broken": n}` ([`crate::BarrierStats`]) |
//! | `POST /emulator/hits/reset` | → `{}`; zeroes hits, refresh counts and barrier counts |
//! | `POST /emulator/keys/rotate` | → `{kid}` |
//! | `GET /emulator/events?sub=&calendarId=` | → the stored events |
//! | `POST /emulator/users/{sub}/revoke` | → `{revoked}`: the whole grant, as Google's `/revoke` does |
//! | `POST /emulator/users/{sub}/expire-access-tokens` | → `{}` |
//! | `POST /emulator/users/{sub}/expire-refresh-tokens` | → `{expired: n}`: time-based access ends now (refreshes get `invalid_grant`, the scopes are no longer granted) |
//! | `GET /emulator/issued-secrets` | → every token, code and the client secret issued |
//! | `POST /emulator/reset` | → `{}` |

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
