//! The fake Google's Calendar: an event per (user, calendar, id), inserted with a
//! live access token that carries a Calendar scope.

use async_trait::async_trait;
use serde_json::Value;

use super::FakeGoogle;
use crate::ports::Calendar;
use crate::secret::Secret;
use crate::types::{CALENDAR_EVENTS_SCOPE, CALENDAR_SCOPE, CalendarId, EventId, SendUpdates};
use crate::upstream::CalendarError;

#[async_trait]
impl Calendar for FakeGoogle {
    async fn insert(
        &self,
        access_token: &Secret,
        calendar: &CalendarId,
        _send_updates: SendUpdates,
        event: &Value,
    ) -> Result<Value, CalendarError> {
        let mut state = self.state.lock().unwrap();
        state.calls.inserts += 1;
        if let Some(err) = state.insert_failures.pop_front() {
            return Err(err);
        }
        let (sub, scopes) = state
            .live_access
            .get(access_token.expose())
            .cloned()
            .ok_or(CalendarError::Unauthorized)?;
        if !(scopes.contains(CALENDAR_SCOPE) || scopes.contains(CALENDAR_EVENTS_SCOPE)) {
            return Err(CalendarError::InsufficientScope);
        }
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let key = (sub, calendar.as_str().to_owned(), id.clone());
        if state.events.contains_key(&key) {
            return Err(CalendarError::Duplicate { ours: false });
        }
        let mut created = event.clone();
        created["htmlLink"] = Value::String(format!("https://calendar.test/event?eid={id}"));
        created["status"] = Value::String("confirmed".into());
        state.events.insert(key, created.clone());
        Ok(created)
    }

    async fn get(&self, access_token: &Secret, calendar: &CalendarId, id: &EventId) -> Result<Value, CalendarError> {
        let mut state = self.state.lock().unwrap();
        state.calls.gets += 1;
        let (sub, _) = state
            .live_access
            .get(access_token.expose())
            .cloned()
            .ok_or(CalendarError::Unauthorized)?;
        let key = (sub, calendar.as_str().to_owned(), id.as_str().to_owned());
        state.events.get(&key).cloned().ok_or(CalendarError::NotFound)
    }
}
