//! Create a Google Calendar event for a user who is not there. Every insert carries
//! a chosen event id, so no retry (ours, the client's with `Idempotency-Key`, or a
//! redelivered job) creates a second event: a key derives the same id for the same
//! user and calendar, whichever entry point sends it.

use std::sync::Arc;

use serde_json::Value;

use super::access::AccessTokens;
use crate::error::{ApiError, FieldError};
use crate::event::ValidEvent;
use crate::google::CalendarError;
use crate::ports::Calendar;
use crate::telemetry::metric;
use crate::types::{CALENDAR_EVENTS_SCOPE, CalendarId, EventId, IdempotencyKey, SendUpdates};

pub struct NewEvent {
    pub calendar: CalendarId,
    pub send_updates: SendUpdates,
    pub key: Option<IdempotencyKey>,
    pub event: ValidEvent,
}

/// Google's event as Google returned it; `replayed` when it already existed (an
/// earlier request or job with the same key), not created by this call.
#[derive(Debug)]
pub struct Created {
    pub event: Value,
    pub replayed: bool,
}

pub struct CalendarEvents {
    access: Arc<AccessTokens>,
    calendar: Arc<dyn Calendar>,
}

impl CalendarEvents {
    pub fn new(access: Arc<AccessTokens>, calendar: Arc<dyn Calendar>) -> Self {
        Self { access, calendar }
    }

    pub async fn create(&self, sub: &str, new: NewEvent) -> Result<Created, ApiError> {
        let (grant, _) = self
            .access
            .usable_grant(sub, |scopes| {
                if scopes.allows_calendar_writes() {
                    Ok(())
                } else {
                    Err(ApiError::ScopeRequired {
                        scopes: vec![CALENDAR_EVENTS_SCOPE.to_owned()],
                    })
                }
            })
            .await?;
        let mut event = new.event.into_inner();
        let id = match (&new.key, event.get("id")) {
            (Some(key), _) => EventId::derive(sub, new.calendar.as_str(), key),
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

        let mut token = self.access.token(&grant, None).await?;
        let mut refreshed = false;
        loop {
            let error = match self
                .calendar
                .insert(&token.token, &new.calendar, new.send_updates, &event)
                .await
            {
                Ok(created) => {
                    metric("CalendarEventInserted", 1.0);
                    return Ok(Created {
                        event: created,
                        replayed: false,
                    });
                }
                Err(err) => err,
            };
            match error {
                // The cached or just-refreshed token may have been revoked: refresh once.
                CalendarError::Unauthorized if !refreshed => {
                    refreshed = true;
                    token = self.access.token(&grant, Some(&token.token)).await?;
                }
                CalendarError::Duplicate { ours } => {
                    let existing = self.calendar.get(&token.token, &new.calendar, &id).await?;
                    // `ours`: an earlier attempt of this very call created it.
                    return Ok(Created {
                        event: existing,
                        replayed: !ours,
                    });
                }
                other => return Err(other.into()),
            }
        }
    }
}
