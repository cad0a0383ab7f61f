//! Google Calendar `events.insert` / `events.get`. Inserts always carry a
//! client-chosen event id, so retrying after a timeout can never create a second
//! event: Google answers 409 to the retry instead.

use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::outbound::{self, Attempt, Transport, retry, retry_after};
use crate::ports::Calendar;
use crate::secret::Secret;
use crate::types::{CalendarId, EventId, SendUpdates};
pub use crate::upstream::CalendarError;

/// Path-segment encoding: everything but unreserved characters, so `@`, `/` and `#`
/// in calendar ids cannot change the URL's meaning.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub struct CalendarClient {
    http: reqwest::Client,
    timeout: Duration,
    base_url: String,
}

impl CalendarClient {
    pub fn new(base_url: &str, http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            http,
            timeout,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn events_url(&self, calendar: &CalendarId) -> String {
        format!(
            "{}/calendars/{}/events",
            self.base_url,
            utf8_percent_encode(calendar.as_str(), SEGMENT)
        )
    }
}

#[async_trait]
impl Calendar for CalendarClient {
    /// `events.insert`, retried on 5xx, timeouts and lost answers: the chosen event
    /// id makes a retry safe (Google answers 409 if the lost attempt created it).
    async fn insert(
        &self,
        access_token: &Secret,
        calendar: &CalendarId,
        send_updates: SendUpdates,
        event: &Value,
    ) -> Result<Value, CalendarError> {
        let url = self.events_url(calendar);
        retry("Calendar insert", |attempt| {
            let request = self
                .http
                .post(&url)
                .query(&[("sendUpdates", send_updates.as_str())])
                .bearer_auth(access_token.expose())
                .json(event);
            async move {
                match read(outbound::send(&self.http, self.timeout, request).await).await {
                    Err(CalendarError::Duplicate { .. }) => {
                        Attempt::Done(Err(CalendarError::Duplicate { ours: attempt > 1 }))
                    }
                    Err(err @ CalendarError::Unavailable(_)) => Attempt::Retry(err, None),
                    other => Attempt::Done(other),
                }
            }
        })
        .await
    }

    /// `events.get`, used to return the existing event on an idempotent replay.
    async fn get(&self, access_token: &Secret, calendar: &CalendarId, id: &EventId) -> Result<Value, CalendarError> {
        let url = format!("{}/{}", self.events_url(calendar), id.as_str());
        retry("Calendar get", |_| {
            let request = self.http.get(&url).bearer_auth(access_token.expose());
            async move {
                match read(outbound::send(&self.http, self.timeout, request).await).await {
                    Err(err @ CalendarError::Unavailable(_)) => Attempt::Retry(err, None),
                    other => Attempt::Done(other),
                }
            }
        })
        .await
    }
}

async fn read(sent: Result<reqwest::Response, Transport>) -> Result<Value, CalendarError> {
    let response = sent.map_err(|t| CalendarError::Unavailable(t.to_string()))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = response
        .bytes()
        .await
        .map_err(|e| CalendarError::Unavailable(Transport::classify(&e).to_string()))?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if (200..300).contains(&status) {
        return match json {
            Some(event @ Value::Object(_)) => Ok(event),
            _ => Err(CalendarError::Unusable(format!("HTTP {status} without a JSON event"))),
        };
    }
    let error = json.as_ref().map(|j| &j["error"]);
    let reasons: Vec<&str> = error
        .and_then(|e| e["errors"].as_array())
        .map(|errors| errors.iter().filter_map(|e| e["reason"].as_str()).collect())
        .unwrap_or_default();
    let message = error
        .and_then(|e| e["message"].as_str())
        .unwrap_or("no message")
        .to_owned();
    let has = |reason: &str| reasons.contains(&reason);
    Err(match status {
        401 => CalendarError::Unauthorized,
        403 if has("insufficientPermissions") || message.contains("insufficient authentication scopes") => {
            CalendarError::InsufficientScope
        }
        403 if has("rateLimitExceeded") || has("userRateLimitExceeded") || has("quotaExceeded") => {
            CalendarError::RateLimited { retry_after }
        }
        429 => CalendarError::RateLimited { retry_after },
        404 | 410 => CalendarError::NotFound,
        409 => CalendarError::Duplicate { ours: false },
        400 | 403 => CalendarError::Refused(message),
        500..=599 => CalendarError::Unavailable(format!("HTTP {status}")),
        _ => CalendarError::Unusable(format!("HTTP {status}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_ids_are_encoded_as_one_path_segment() {
        let client = CalendarClient::new(
            "https://calendar.test/calendar/v3/",
            crate::outbound::http_client(Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        let calendar = CalendarId::parse("team@example.com/x#y").unwrap();
        assert_eq!(
            client.events_url(&calendar),
            "https://calendar.test/calendar/v3/calendars/team%40example.com%2Fx%23y/events"
        );
    }
}
