//! `POST /calendar/events`: create a Google Calendar event for a user who is not
//! there, from their stored refresh token. Validation and the scope gate run before
//! anything reaches KMS or Google; every insert carries a chosen event id, so no retry
//! (ours or the client's, with `Idempotency-Key`) creates a second event.

use std::time::Duration;

use ::http::{HeaderValue, Method, StatusCode};
use lambda_http::Request;
use serde_json::Value;
use shared::auth::{authenticate, google_rate_limited, google_unavailable, token_error};
use shared::error::FieldError;
use shared::google::{CalendarError, TokenError};
use shared::http::{self, Response, Route};
use shared::types::{EventId, IdempotencyKey};
use shared::vault::{Ciphertext, GrantStatus};
use shared::{ApiError, App, Needs, Secret};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/calendar/events")];
const SEND_UPDATES: [&str; 3] = ["all", "externalOnly", "none"];
/// Google's access tokens live an hour; assume so when `expires_in` is missing.
const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

pub async fn handle(app: &App, req: Request) -> Response {
    http::serve(&app.cors, &ROUTES, req, |_, req| create_event(app, req)).await
}

/// Everything about the request that can be checked without the network.
struct EventRequest {
    calendar_id: String,
    send_updates: String,
    key: Option<IdempotencyKey>,
    event: serde_json::Map<String, Value>,
}

fn parse(req: &Request) -> Result<EventRequest, ApiError> {
    let calendar_id = http::query_param(req, "calendarId")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "primary".into());
    let send_updates = http::query_param(req, "sendUpdates").unwrap_or_else(|| "none".into());
    if !SEND_UPDATES.contains(&send_updates.as_str()) {
        return Err(ApiError::invalid_request(
            "'sendUpdates' must be all, externalOnly or none.",
        ));
    }
    let key =
        match req.headers().get("idempotency-key") {
            None => None,
            Some(raw) => Some(raw.to_str().ok().and_then(IdempotencyKey::parse).ok_or_else(|| {
                ApiError::invalid_request("'Idempotency-Key' must be 1-255 visible ASCII characters.")
            })?),
        };
    let event = shared::event::validate(http::json_body(req)?)
        .map_err(ApiError::InvalidEvent)?
        .into_inner();
    Ok(EventRequest {
        calendar_id,
        send_updates,
        key,
        event,
    })
}

async fn create_event(app: &App, req: Request) -> Result<Response, ApiError> {
    let identity = authenticate(app, &req).await?;
    let EventRequest {
        calendar_id,
        send_updates,
        key,
        mut event,
    } = parse(&req)?;
    let sub = identity.sub.as_str();

    let grant = app.vault.get(sub).await?.ok_or(ApiError::ScopeRequired)?;
    if grant.status == GrantStatus::ReauthorizationRequired {
        return Err(ApiError::ReauthorizationRequired);
    }
    if !grant.scopes.allows_calendar_writes() {
        return Err(ApiError::ScopeRequired);
    }
    let refresh_token = grant.refresh_token.ok_or(ApiError::OfflineAccessRequired)?;

    let id = match (&key, event.get("id")) {
        (Some(key), _) => EventId::derive(sub, &calendar_id, key),
        (None, None | Some(Value::Null)) => EventId::random(),
        (None, Some(own)) => own.as_str().and_then(EventId::parse).ok_or_else(|| {
            ApiError::InvalidEvent(vec![FieldError::new(
                "id",
                "'id' must be 5-1024 characters a-v or 0-9.",
            )])
        })?,
    };
    event.insert("id".into(), Value::String(id.as_str().to_owned()));
    let event = Value::Object(event);

    let mut token = access_token(app, sub, &refresh_token, false).await?;
    let mut refreshed = false;
    loop {
        let error = match app.calendar.insert(&token, &calendar_id, &send_updates, &event).await {
            Ok(created) => return Ok(http::json_response(StatusCode::CREATED, &created)),
            Err(err) => err,
        };
        match error {
            // The cached or just-refreshed token may have been revoked: refresh once.
            CalendarError::Unauthorized if !refreshed => {
                refreshed = true;
                app.access_tokens.forget(sub);
                token = access_token(app, sub, &refresh_token, true).await?;
            }
            CalendarError::Duplicate { ours } => {
                let existing = app
                    .calendar
                    .get(&token, &calendar_id, &id)
                    .await
                    .map_err(calendar_error)?;
                if ours {
                    // An earlier attempt of this very request created it.
                    return Ok(http::json_response(StatusCode::CREATED, &existing));
                }
                let mut response = http::json_response(StatusCode::OK, &existing);
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(response);
            }
            other => return Err(calendar_error(other)),
        }
    }
}

/// A valid access token: the warm container's cached one while it has more than five
/// minutes left, else a refresh (`force` skips the cache).
async fn access_token(app: &App, sub: &str, refresh_ct: &Ciphertext, force: bool) -> Result<Secret, ApiError> {
    if !force && let Some(token) = app.access_tokens.get(sub, refresh_ct) {
        return Ok(token);
    }
    let refresh_token = app.vault.open(sub, refresh_ct).await?;
    match app.oauth.refresh(&refresh_token).await {
        Ok(granted) => {
            let mut source = refresh_ct.clone();
            if let Some(rotated) = &granted.refresh_token {
                let sealed = app.vault.seal(sub, rotated).await?;
                app.vault.replace_refresh_token(sub, refresh_ct, sealed.clone()).await?;
                source = sealed;
            }
            let lifetime = granted.expires_in.unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME);
            app.access_tokens
                .put(sub, &source, granted.access_token.clone(), lifetime);
            Ok(granted.access_token)
        }
        Err(TokenError::InvalidGrant) => {
            // Revoked, expired or the user removed access: the token is dead for good.
            tracing::warn!("refresh token refused by Google; grant needs reauthorization");
            app.access_tokens.forget(sub);
            app.vault.mark_reauthorization_required(sub, Some(refresh_ct)).await?;
            Err(ApiError::ReauthorizationRequired)
        }
        Err(other) => Err(token_error(other)),
    }
}

fn calendar_error(err: CalendarError) -> ApiError {
    match err {
        CalendarError::InsufficientScope => ApiError::ScopeRequired,
        CalendarError::RateLimited { retry_after } => google_rate_limited(retry_after),
        CalendarError::NotFound => ApiError::NotFound("Google Calendar has no such calendar for this user.".into()),
        CalendarError::Refused(message) => ApiError::InvalidEvent(vec![FieldError { field: None, message }]),
        CalendarError::Unavailable(reason) => google_unavailable(reason, None),
        CalendarError::Unauthorized => ApiError::Upstream("Calendar refused a freshly refreshed access token".into()),
        CalendarError::Duplicate { .. } => ApiError::Upstream("event id conflict".into()),
        CalendarError::Unusable(reason) => ApiError::Upstream(reason),
    }
}
