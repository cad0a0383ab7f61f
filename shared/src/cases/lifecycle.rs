//! Lifecycle events for the team's bus: what changed in a grant (from the old and
//! new image of a stored change) and how a job ended. `event_id` is derived from
//! what changed, never random, so a redelivered change yields the same id and
//! consumers can deduplicate on it. No detail ever holds a token or a ciphertext.

use aws_lc_rs::digest;
use data_encoding::HEXLOWER;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::grant::{Grant, GrantStatus};
use crate::ports::Outgoing;

/// The `Source` of every event on the bus.
pub const SOURCE: &str = "google-offline-access";

fn event_id(parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    HEXLOWER.encode(&ctx.finish().as_ref()[..16])
}

fn outgoing(detail_type: &'static str, id_parts: &[&str], sub: &str, mut detail: Value) -> Outgoing {
    detail["event_id"] = json!(event_id(&[id_parts, &[detail_type]].concat()));
    detail["sub"] = json!(sub);
    Outgoing { detail_type, detail }
}

/// The events one stored change of a grant means. `removal_reason` is what the
/// deleted item recorded (`risc:account-purged`); a plain delete is the user's.
pub fn grant_changes(old: Option<&Grant>, new: Option<&Grant>, removal_reason: Option<&str>) -> Vec<Outgoing> {
    let mut events = Vec::new();
    let Some(new) = new else {
        if let Some(old) = old {
            let version = format!("removed@{}", old.version);
            let reason = removal_reason.unwrap_or("user");
            events.push(outgoing(
                "GrantDisconnected",
                &[old.sub(), &version],
                old.sub(),
                json!({"reason": reason}),
            ));
        }
        return events;
    };
    let sub = new.sub();
    let version = new.version.to_string();
    let id = [sub, version.as_str()];
    let was_connected = old.is_some_and(Grant::offline_access);
    if new.offline_access() && !was_connected {
        let detail = json!({"email": new.profile.email, "scopes": new.scopes});
        events.push(outgoing("GrantConnected", &id, sub, detail));
    } else if let Some(old) = old.filter(|old| old.scopes != new.scopes) {
        let added = new.scopes.missing_from(&old.scopes);
        let removed = old.scopes.missing_from(&new.scopes);
        let detail = json!({"added": added, "removed": removed, "scopes": new.scopes});
        events.push(outgoing("GrantScopesChanged", &id, sub, detail));
    }
    let was_dead = old.is_some_and(|old| old.status == GrantStatus::ReauthorizationRequired);
    if new.status == GrantStatus::ReauthorizationRequired && !was_dead {
        let reason = new.status_reason.as_deref().unwrap_or("invalid_grant");
        events.push(outgoing(
            "GrantReauthorizationRequired",
            &id,
            sub,
            json!({"reason": reason}),
        ));
    }
    events
}

/// A job's event exists (`replayed`: it already did before this delivery).
pub fn job_created(job_id: &str, sub: &str, calendar_id: &str, event: &Value, replayed: bool) -> Outgoing {
    let detail = json!({
        "job_id": job_id,
        "calendar_id": calendar_id,
        "calendar_event_id": event["id"],
        "html_link": event["htmlLink"],
        "replayed": replayed,
    });
    outgoing("CalendarEventCreated", &["job", sub, calendar_id, job_id], sub, detail)
}

/// A job failed for good. `message_id` keeps unreadable jobs apart.
pub fn job_failed(
    job_id: Option<&str>,
    sub: Option<&str>,
    calendar_id: &str,
    message_id: &str,
    err: &ApiError,
) -> Outgoing {
    let detail = json!({
        "job_id": job_id,
        "calendar_id": calendar_id,
        "code": err.code(),
        "detail": err.detail(),
    });
    let key = job_id.unwrap_or(message_id);
    let mut event = outgoing(
        "CalendarEventFailed",
        &["job", sub.unwrap_or(""), calendar_id, key],
        "",
        detail,
    );
    event.detail["sub"] = json!(sub);
    event
}
