//! Google Calendar `events.insert` and `events.get`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use data_encoding::{BASE32HEX_NOPAD, BASE64URL_NOPAD};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::config::{SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS};
use crate::faults::{self, Endpoint, Gate};
use crate::keys::random_bytes;
use crate::server::{Shared, lock};
use crate::state::{State as EmulatorState, StoredEvent, now};
use crate::token::parse_form;

const WRITE_SCOPES: [&str; 2] = [SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS];
const READ_SCOPES: [&str; 4] = [
    SCOPE_CALENDAR,
    SCOPE_CALENDAR_EVENTS,
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events.readonly",
];

pub(crate) async fn insert(
    State(shared): State<Shared>,
    Path(calendar_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.hits.calendar_insert += 1;
        state.faults.take_for(Endpoint::CalendarInsert, Some(&calendar_id))
    };
    let drop_after = match faults::apply(&shared, Endpoint::CalendarInsert, fault).await {
        Gate::Respond(response) => return response,
        Gate::Proceed { drop_after } => drop_after,
    };
    let send_updates = parse_form(query.unwrap_or_default().as_bytes()).remove("sendUpdates");
    let response = match insert_event(&mut lock(&shared), &headers, &calendar_id, send_updates, &body) {
        Ok(event) => (StatusCode::OK, Json(event)).into_response(),
        Err(error) => error.into_response(),
    };
    faults::finish(response, drop_after)
}

fn insert_event(
    state: &mut EmulatorState,
    headers: &HeaderMap,
    calendar_id: &str,
    send_updates: Option<String>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let sub = authorize(state, headers, &WRITE_SCOPES)?;
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(body) else {
        return Err(classic(StatusCode::BAD_REQUEST, "parseError", "Parse Error"));
    };
    let id = match event.get("id") {
        None => new_event_id(),
        Some(Value::String(id)) if valid_event_id(id) => id.clone(),
        Some(_) => {
            return Err(classic(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid resource id value.",
            ));
        }
    };
    let key = (sub.clone(), calendar_id.to_owned());
    let taken = state
        .events
        .get(&key)
        .is_some_and(|stored| stored.iter().any(|s| s.event["id"] == id.as_str()));
    if taken {
        return Err(classic(
            StatusCode::CONFLICT,
            "duplicate",
            "The requested identifier already exists.",
        ));
    }
    let email = state.profile(&sub).email;
    complete_event(&mut event, &id, calendar_id, &email);
    let event = Value::Object(event);
    let stored = StoredEvent {
        event: event.clone(),
        send_updates,
    };
    state.events.entry(key).or_default().push(stored);
    Ok(event)
}

/// Adds the fields Google sets on a new event to the request's fields.
fn complete_event(event: &mut Map<String, Value>, id: &str, calendar_id: &str, email: &str) {
    let now = OffsetDateTime::now_utc();
    let stamp = now
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .expect("RFC 3339 timestamp");
    let calendar_email = if calendar_id == "primary" { email } else { calendar_id };
    let eid = BASE64URL_NOPAD.encode(format!("{id} {calendar_email}").as_bytes());
    let me = json!({"email": email, "self": true});
    let server_fields = [
        ("kind", json!("calendar#event")),
        ("etag", json!(format!("\"{}\"", now.unix_timestamp_nanos() / 1000))),
        ("id", json!(id)),
        (
            "htmlLink",
            json!(format!("https://www.google.com/calendar/event?eid={eid}")),
        ),
        ("created", json!(stamp)),
        ("updated", json!(stamp)),
        ("creator", me.clone()),
        ("organizer", me),
    ];
    for (name, value) in server_fields {
        event.insert(name.to_owned(), value);
    }
    let defaults = [
        ("status", json!("confirmed")),
        ("iCalUID", json!(format!("{id}@google.com"))),
        ("sequence", json!(0)),
        ("reminders", json!({"useDefault": true})),
    ];
    for (name, value) in defaults {
        event.entry(name).or_insert(value);
    }
}

pub(crate) async fn get(
    State(shared): State<Shared>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.hits.calendar_get += 1;
        state.faults.take_for(Endpoint::CalendarGet, Some(&calendar_id))
    };
    let drop_after = match faults::apply(&shared, Endpoint::CalendarGet, fault).await {
        Gate::Respond(response) => return response,
        Gate::Proceed { drop_after } => drop_after,
    };
    let response = {
        let state = lock(&shared);
        match authorize(&state, &headers, &READ_SCOPES) {
            Err(error) => error.into_response(),
            Ok(sub) => state
                .events
                .get(&(sub, calendar_id))
                .and_then(|stored| stored.iter().find(|s| s.event["id"] == event_id.as_str()))
                .map_or_else(
                    || classic(StatusCode::NOT_FOUND, "notFound", "Not Found").into_response(),
                    |stored| Json(stored.event.clone()).into_response(),
                ),
        }
    };
    faults::finish(response, drop_after)
}

/// Checks the bearer access token; returns its user's `sub`.
fn authorize(
    state: &EmulatorState,
    headers: &HeaderMap,
    accepted: &'static [&'static str],
) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer else {
        return Err(ApiError::MissingCredentials);
    };
    let entry = match state.access_tokens.get(token) {
        Some(entry) if entry.expires_at > now() => entry,
        _ => return Err(ApiError::InvalidCredentials),
    };
    if !accepted.iter().any(|scope| entry.scopes.contains(*scope)) {
        return Err(ApiError::InsufficientScopes(accepted));
    }
    Ok(entry.sub.clone())
}

/// Google API errors this module answers with.
enum ApiError {
    MissingCredentials,
    InvalidCredentials,
    InsufficientScopes(&'static [&'static str]),
    /// Calendar's classic shape (`errors`, `code`, `message`).
    Classic {
        status: StatusCode,
        reason: &'static str,
        message: &'static str,
    },
}

fn classic(status: StatusCode, reason: &'static str, message: &'static str) -> ApiError {
    ApiError::Classic {
        status,
        reason,
        message,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::MissingCredentials => unauthenticated(
                "required",
                "Login Required.",
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            ),
            Self::InvalidCredentials => unauthenticated(
                "authError",
                "Invalid Credentials",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            ),
            Self::InsufficientScopes(accepted) => insufficient_scopes(accepted),
            Self::Classic {
                status,
                reason,
                message,
            } => {
                let body = json!({"error": {
                    "errors": [{"domain": "global", "reason": reason, "message": message}],
                    "code": status.as_u16(),
                    "message": message,
                }});
                (status, Json(body)).into_response()
            }
        }
    }
}

fn unauthenticated(reason: &str, short: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": 401,
        "message": message,
        "errors": [{"message": short, "domain": "global", "reason": reason, "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED",
    }});
    let challenge = HeaderValue::from_static(r#"Bearer realm="https://accounts.google.com/", error="invalid_token""#);
    let headers = [(header::WWW_AUTHENTICATE, challenge)];
    (StatusCode::UNAUTHORIZED, headers, Json(body)).into_response()
}

fn insufficient_scopes(accepted: &[&str]) -> Response {
    let body = json!({"error": {
        "code": 403,
        "message": "Request had insufficient authentication scopes.",
        "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}],
        "status": "PERMISSION_DENIED",
    }});
    let challenge = format!(
        r#"Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{}""#,
        accepted.join(" ")
    );
    let headers = [(header::WWW_AUTHENTICATE, challenge)];
    (StatusCode::FORBIDDEN, headers, Json(body)).into_response()
}

/// Google's rule for client-chosen ids: base32hex digits, 5 to 1024 of them.
pub(crate) fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

fn new_event_id() -> String {
    BASE32HEX_NOPAD.encode(&random_bytes(16)).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_rules() {
        assert!(valid_event_id("abcde"));
        assert!(valid_event_id(&new_event_id()));
        assert!(!valid_event_id("abcd"));
        assert!(!valid_event_id("abcdw"));
        assert!(!valid_event_id("ABCDE"));
        assert!(!valid_event_id(&"a".repeat(1025)));
    }
}
