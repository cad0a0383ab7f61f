//! Lifecycle events for the team's bus: what changed in a grant (from the old and
//! new image of a stored change) and how a job ended. `event_id` is derived from
//! what changed, never random, so a redelivered change yields the same id and
//! consumers can deduplicate on it. No detail ever holds a token or a ciphertext,
//! and none is larger than 8 KB: a value copied from a job message is cut to 256
//! characters (`truncated` says so), Google's text to 1024.

use aws_lc_rs::digest;
use data_encoding::HEXLOWER;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::grant::{Grant, GrantStatus, RemovalReason, unix_rfc3339};
use crate::ports::Outgoing;
use crate::types::Sub;

/// What is kept of a value copied from a job message.
pub const MAX_ECHOED_CHARS: usize = 256;
/// What is kept of a sentence or link that came from Google.
const MAX_TEXT_CHARS: usize = 1024;

fn event_id(parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    HEXLOWER.encode(&ctx.finish().as_ref()[..16])
}

fn outgoing(detail_type: &'static str, id_parts: &[&str], sub: Option<&str>, mut detail: Value) -> Outgoing {
    detail["event_id"] = json!(event_id(&[id_parts, &[detail_type]].concat()));
    detail["sub"] = json!(sub);
    Outgoing { detail_type, detail }
}

/// `text` cut to `max` characters, and whether it was cut.
fn cut(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (text[..end].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

/// The events one stored change of a grant means. `removal_reason` is what the
/// deleted item recorded (`risc:account-purged`); a plain delete is the user's.
pub fn grant_changes(old: Option<&Grant>, new: Option<&Grant>, removal_reason: Option<RemovalReason>) -> Vec<Outgoing> {
    let mut events = Vec::new();
    let Some(new) = new else {
        if let Some(old) = old {
            let version = format!("removed@{}", old.version);
            let reason = removal_reason.unwrap_or(RemovalReason::User).as_str();
            let sub = old.sub().as_str();
            events.push(outgoing(
                "GrantDisconnected",
                &[sub, &version],
                Some(sub),
                json!({"reason": reason}),
            ));
        }
        return events;
    };
    let sub = new.sub().as_str();
    let version = new.version.to_string();
    let id = [sub, version.as_str()];
    let was_connected = old.is_some_and(Grant::offline_access);
    if new.offline_access() && !was_connected {
        let detail = json!({"email": new.profile.email, "scopes": new.scopes});
        events.push(outgoing("GrantConnected", &id, Some(sub), detail));
    } else if let Some(old) = old.filter(|old| old.scopes != new.scopes) {
        let added = new.scopes.missing_from(&old.scopes);
        let removed = old.scopes.missing_from(&new.scopes);
        let detail = json!({"added": added, "removed": removed, "scopes": new.scopes});
        events.push(outgoing("GrantScopesChanged", &id, Some(sub), detail));
    }
    let was_dead = old.is_some_and(|old| old.status == GrantStatus::ReauthorizationRequired);
    if new.status == GrantStatus::ReauthorizationRequired && !was_dead {
        let reason = new.status_reason.as_deref().unwrap_or("invalid_grant");
        events.push(outgoing(
            "GrantReauthorizationRequired",
            &id,
            Some(sub),
            json!({"reason": reason}),
        ));
    }
    let noticed_before = old.and_then(|old| old.expiry_noticed);
    if let (Some(expiry), true) = (new.expiry_noticed, new.offline_access())
        && noticed_before != Some(expiry)
        && new.expires_at() == Some(expiry)
    {
        let expiry_text = expiry.to_string();
        let detail = json!({"expires_at": unix_rfc3339(expiry), "scopes": new.scopes});
        events.push(outgoing("GrantExpiring", &[sub, &expiry_text], Some(sub), detail));
    }
    events
}

/// A job's event exists (`replayed`: it already did before this delivery).
pub fn job_created(job_id: &str, sub: &Sub, calendar_id: &str, event: &Value, replayed: bool) -> Outgoing {
    let (calendar, cut_calendar) = cut(calendar_id, MAX_ECHOED_CHARS);
    let (link, _) = cut(event["htmlLink"].as_str().unwrap_or_default(), MAX_TEXT_CHARS);
    let (event_id, _) = cut(event["id"].as_str().unwrap_or_default(), MAX_TEXT_CHARS);
    let mut detail = json!({
        "job_id": job_id,
        "calendar_id": calendar,
        "calendar_event_id": event_id,
        "html_link": link,
        "replayed": replayed,
    });
    if cut_calendar {
        detail["truncated"] = json!(true);
    }
    outgoing(
        "CalendarEventCreated",
        &["job", sub.as_str(), calendar_id, job_id],
        Some(sub.as_str()),
        detail,
    )
}

/// What could be read of a job message that failed for good: each raw value as it
/// came (the event cuts them).
#[derive(Debug, Clone, Default)]
pub struct JobEcho<'a> {
    pub job_id: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub calendar_id: &'a str,
    /// The SQS message id: keeps unreadable jobs' events apart.
    pub message_id: &'a str,
}

/// A job failed for good.
pub fn job_failed(echo: &JobEcho<'_>, err: &ApiError) -> Outgoing {
    let (job_id, cut_job) = echo.job_id.map_or((None, false), |j| {
        let (j, cut) = cut(j, MAX_ECHOED_CHARS);
        (Some(j), cut)
    });
    let (sub, cut_sub) = echo.sub.map_or((None, false), |s| {
        let (s, cut) = cut(s, MAX_ECHOED_CHARS);
        (Some(s), cut)
    });
    let (calendar, cut_calendar) = cut(echo.calendar_id, MAX_ECHOED_CHARS);
    let (sentence, _) = cut(&err.detail(), MAX_TEXT_CHARS);
    let mut detail = json!({
        "job_id": job_id,
        "calendar_id": calendar,
        "code": err.code(),
        "detail": sentence,
    });
    if cut_job || cut_sub || cut_calendar {
        detail["truncated"] = json!(true);
    }
    let key = echo.job_id.unwrap_or(echo.message_id);
    outgoing(
        "CalendarEventFailed",
        &["job", echo.sub.unwrap_or(""), echo.calendar_id, key],
        sub.as_deref(),
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_copied_from_a_job_are_cut_and_the_cut_is_said() {
        let huge = "x".repeat(250 * 1024);
        let echo = JobEcho {
            job_id: Some(&huge),
            sub: Some(&huge),
            calendar_id: &huge,
            message_id: "m1",
        };
        let event = job_failed(&echo, &ApiError::InvalidJob("bad".into()));
        let text = event.detail.to_string();
        assert!(text.len() < 8 * 1024, "{} bytes", text.len());
        assert_eq!(
            event.detail["job_id"].as_str().unwrap().chars().count(),
            MAX_ECHOED_CHARS
        );
        assert_eq!(event.detail["truncated"], json!(true));
        let fine = JobEcho {
            job_id: Some("booking-1"),
            sub: Some("42"),
            calendar_id: "primary",
            message_id: "m2",
        };
        let event = job_failed(&fine, &ApiError::NotConnected);
        assert!(event.detail.get("truncated").is_none());
        assert_eq!(event.detail["sub"], "42");
        assert_eq!(cut("héllo", 2), ("hé".to_owned(), true));
    }
}
