//! Create a Google Calendar event for a user who is not there. Every insert carries
//! a chosen event id, so no retry (ours, the client's with `Idempotency-Key`, or a
//! redelivered job) creates a second event: a key derives the same id for the same
//! user and calendar, whichever entry point sends it.

use std::sync::Arc;

use serde_json::Value;

use super::access::AccessTokens;
use crate::error::{ApiError, FieldError};
use crate::event::ValidEvent;
use crate::grant::Grant;
use crate::ports::Calendar;
use crate::telemetry::metric;
use crate::types::{CALENDAR_EVENTS_SCOPE, CalendarId, EventId, IdempotencyKey, SendUpdates, Sub};
use crate::upstream::CalendarError;

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

    pub fn access(&self) -> &Arc<AccessTokens> {
        &self.access
    }

    /// Creates `new` for `sub`; `known` is the user's grant when it was read for
    /// this call already (a batch of jobs reads its grants together).
    pub async fn create(&self, sub: &Sub, new: NewEvent, known: Option<Grant>) -> Result<Created, ApiError> {
        let grant = self
            .access
            .usable_grant(sub, known, |scopes| {
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
            (Some(key), _) => EventId::derive(sub.as_str(), new.calendar.as_str(), key),
            (None, None | Some(Value::Null)) => self.random_id(),
            (None, Some(own)) => own.as_str().and_then(EventId::parse).ok_or_else(|| {
                ApiError::InvalidEvent(vec![FieldError::new(
                    "id",
                    "'id' must be 5-1024 characters a-v or 0-9.",
                )])
            })?,
        };
        event.insert("id".into(), Value::String(id.as_str().to_owned()));
        let event = Value::Object(event);
        let mut token = self.access.token(&grant, None, None).await?;
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
                    token = self.access.token(&grant, None, Some(&token.token)).await?;
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

    fn random_id(&self) -> EventId {
        let random = &self.access.ambient().random;
        let bytes: Vec<u8> = (0..3).flat_map(|_| random.next_u64().to_le_bytes()).collect();
        EventId::from_random(&bytes[..20])
    }
}
