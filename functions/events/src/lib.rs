//! `POST /calendar/events`: create a Google Calendar event for the signed-in user
//! from their stored refresh token. Validation and the scope gate run before
//! anything reaches KMS or Google.

use std::sync::Arc;

use ::http::{HeaderValue, Method, StatusCode};
use lambda_http::Request;
use shared::cases::{CalendarEvents, NewEvent};
use shared::http::{self, Cors, Response, Route};
use shared::ports::IdTokens;
use shared::types::{CALENDAR_EVENTS_SCOPE, CalendarId, IdempotencyKey, SendUpdates};
use shared::{ApiError, Boot, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/calendar/events")];

pub struct Events {
    cors: Cors,
    id_tokens: Arc<dyn IdTokens>,
    events: CalendarEvents,
}

impl Events {
    /// ID tokens, the table, KMS (refresh tokens, and the fleet's shared access
    /// tokens), Google's token endpoint and Calendar.
    pub fn new(boot: &Boot) -> Self {
        Self {
            cors: boot.cors(),
            id_tokens: boot.id_tokens(),
            events: CalendarEvents::new(Arc::new(boot.access_tokens()), boot.calendar()),
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        http::serve(&self.cors, &ROUTES, req, |_, req| self.create(req)).await
    }

    async fn create(&self, req: Request) -> Result<Response, ApiError> {
        let identity = http::authenticate(self.id_tokens.as_ref(), &req).await?;
        let new = parse(&req)?;
        let created = self
            .events
            .create(identity.sub(), new, None)
            .await
            .map_err(|err| match err {
                // Over HTTP the answer to "no grant at all" is the same as to "no
                // Calendar scope": run (incremental) authorization.
                ApiError::NotConnected => ApiError::ScopeRequired {
                    scopes: vec![CALENDAR_EVENTS_SCOPE.to_owned()],
                },
                other => other,
            })?;
        if !created.replayed {
            return Ok(http::json_response(StatusCode::CREATED, &created.event));
        }
        let mut response = http::json_response(StatusCode::OK, &created.event);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(response)
    }
}

/// Everything about the request that can be checked without the network.
fn parse(req: &Request) -> Result<NewEvent, ApiError> {
    let calendar = match http::query_param(req, "calendarId").filter(|c| !c.is_empty()) {
        None => CalendarId::primary(),
        Some(raw) => CalendarId::parse(&raw).ok_or_else(|| {
            ApiError::invalid_request(
                "'calendarId' must be 1-1024 characters, not '.' or '..', without control characters.",
            )
        })?,
    };
    let send_updates = match http::query_param(req, "sendUpdates") {
        None => SendUpdates::default(),
        Some(raw) => SendUpdates::parse(&raw)
            .ok_or_else(|| ApiError::invalid_request("'sendUpdates' must be all, externalOnly or none."))?,
    };
    let key =
        match req.headers().get("idempotency-key") {
            None => None,
            Some(raw) => Some(raw.to_str().ok().and_then(IdempotencyKey::parse).ok_or_else(|| {
                ApiError::invalid_request("'Idempotency-Key' must be 1-255 visible ASCII characters.")
            })?),
        };
    let body = http::json_body(req)?;
    let json =
        serde_json::from_slice(body).map_err(|_| ApiError::invalid_request("The request body is not valid JSON."))?;
    let event = shared::event::validate(json).map_err(ApiError::InvalidEvent)?;
    Ok(NewEvent {
        calendar,
        send_updates,
        key,
        event,
    })
}
