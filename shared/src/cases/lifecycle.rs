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

    use crate::grant::{Ciphertext, SealedToken, TokenIds};
    use crate::identity::Profile;
    use crate::secret::Secret;
    use crate::types::ScopeSet;
    use time::OffsetDateTime;

    const T0: i64 = 1_900_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn scopes(list: &[&str]) -> ScopeSet {
        list.iter().copied().collect()
    }

    fn token(byte: u8, expires_at: Option<i64>) -> SealedToken {
        SealedToken {
            ciphertext: Ciphertext(vec![byte]),
            ids: TokenIds::of(&Secret::new(format!("token-{byte}"))),
            issued_ms: Some(T0 * 1000 + i64::from(byte)),
            expires_at,
        }
    }

    /// A grant of `sub` with `list` scopes, connected (a refresh token) or not.
    fn grant(sub: &str, list: &[&str], refresh: Option<&SealedToken>) -> Grant {
        let profile = Profile::bare(Sub::parse(sub).unwrap());
        Grant::authorized(None, &profile, &scopes(list), refresh, at(T0))
    }

    fn types(events: &[Outgoing]) -> Vec<&'static str> {
        events.iter().map(|e| e.detail_type).collect()
    }

    #[test]
    fn event_ids_are_stable_and_keep_their_parts_apart() {
        let id = event_id(&["ab", "c"]);
        assert_eq!(id.len(), 32);
        assert_eq!(id, event_id(&["ab", "c"]));
        assert_ne!(id, event_id(&["a", "bc"]), "each part's length is hashed too");
        assert_ne!(id, event_id(&["abc"]));
        assert_ne!(id, event_id(&["ab", "d"]));
    }

    #[test]
    fn nothing_before_and_nothing_after_means_no_event() {
        assert!(grant_changes(None, None, None).is_empty());
    }

    #[test]
    fn a_deleted_grant_is_disconnected_with_its_recorded_reason() {
        let old = grant("42", &["openid"], Some(&token(1, None)));
        let by_user = grant_changes(Some(&old), None, None);
        assert_eq!(types(&by_user), ["GrantDisconnected"]);
        assert_eq!(by_user[0].detail["reason"], "user");
        assert_eq!(by_user[0].detail["sub"], "42");
        let purged = grant_changes(Some(&old), None, Some(RemovalReason::AccountPurged));
        assert_eq!(purged[0].detail["reason"], "risc:account-purged");
        assert_eq!(
            by_user[0].detail["event_id"], purged[0].detail["event_id"],
            "one deletion, one id"
        );
    }

    #[test]
    fn connecting_is_announced_once_and_only_with_offline_access() {
        let rt = token(1, None);
        let connected = grant("42", &["openid"], Some(&rt));
        let events = grant_changes(None, Some(&connected), None);
        assert_eq!(types(&events), ["GrantConnected"]);
        assert_eq!(events[0].detail["scopes"], json!(["openid"]));

        let online_only = grant("42", &["openid"], None);
        assert!(grant_changes(None, Some(&online_only), None).is_empty());
        let later = Grant::authorized(
            Some(&online_only),
            &online_only.profile,
            &scopes(&["openid"]),
            Some(&rt),
            at(T0 + 5),
        );
        assert_eq!(
            types(&grant_changes(Some(&online_only), Some(&later), None)),
            ["GrantConnected"]
        );

        let again = Grant::authorized(
            Some(&connected),
            &connected.profile,
            &scopes(&["openid"]),
            None,
            at(T0 + 5),
        );
        assert!(
            grant_changes(Some(&connected), Some(&again), None).is_empty(),
            "same scopes, still connected"
        );
    }

    #[test]
    fn a_scope_change_names_what_was_added_and_removed() {
        let old = grant("42", &["openid", "email"], Some(&token(1, None)));
        let mut new = Grant::authorized(Some(&old), &old.profile, &scopes(&["calendar"]), None, at(T0 + 5));
        let events = grant_changes(Some(&old), Some(&new), None);
        assert_eq!(types(&events), ["GrantScopesChanged"]);
        assert_eq!(events[0].detail["added"], json!(["calendar"]));
        assert_eq!(events[0].detail["removed"], json!([]));
        new.scopes = scopes(&["openid"]);
        let events = grant_changes(Some(&old), Some(&new), None);
        let email: Vec<String> = scopes(&["email"]).iter().cloned().collect();
        assert_eq!(events[0].detail["removed"], json!(email), "in Google's full form");
        assert_ne!(
            events[0].detail["event_id"],
            grant_changes(
                Some(&old),
                Some(&Grant {
                    version: 9,
                    ..new.clone()
                }),
                None
            )[0]
            .detail["event_id"],
            "each version its own id"
        );
    }

    #[test]
    fn a_grant_dying_is_announced_once_with_its_reason() {
        let alive = grant("42", &["openid"], Some(&token(1, None)));
        let dead = alive.dead("risc:tokens-revoked", at(T0 + 5)).unwrap();
        let events = grant_changes(Some(&alive), Some(&dead), None);
        assert_eq!(types(&events), ["GrantReauthorizationRequired"]);
        assert_eq!(events[0].detail["reason"], "risc:tokens-revoked");
        let still_dead = Grant {
            version: dead.version + 1,
            ..dead.clone()
        };
        assert!(grant_changes(Some(&dead), Some(&still_dead), None).is_empty());
        let unexplained = Grant {
            status_reason: None,
            ..dead.clone()
        };
        assert_eq!(
            grant_changes(Some(&alive), Some(&unexplained), None)[0].detail["reason"],
            "invalid_grant"
        );
    }

    #[test]
    fn an_expiry_notice_is_announced_once_per_expiry_of_the_stored_token() {
        let expiry = T0 + 7 * 24 * 3600;
        let limited = grant("42", &["openid"], Some(&token(1, Some(expiry))));
        let noticed = limited.noticed(expiry, at(T0 + 5)).unwrap();
        let events = grant_changes(Some(&limited), Some(&noticed), None);
        assert_eq!(types(&events), ["GrantExpiring"]);
        assert_eq!(events[0].detail["expires_at"], unix_rfc3339(expiry).unwrap());
        let touched = Grant {
            version: noticed.version + 1,
            ..noticed.clone()
        };
        assert!(
            grant_changes(Some(&noticed), Some(&touched), None).is_empty(),
            "already announced"
        );
        // A notice for another expiry than the stored token's, or on a grant that
        // cannot act offline, announces nothing.
        let stale = limited.noticed(expiry - 1, at(T0 + 5)).unwrap();
        assert!(grant_changes(Some(&limited), Some(&stale), None).is_empty());
        let dead = Grant {
            status: GrantStatus::ReauthorizationRequired,
            ..noticed.clone()
        };
        assert_eq!(
            types(&grant_changes(Some(&dead), Some(&dead), None)),
            Vec::<&str>::new()
        );
        assert!(
            grant_changes(Some(&limited), Some(&dead), None)
                .iter()
                .all(|e| e.detail_type != "GrantExpiring")
        );
    }

    #[test]
    fn each_echoed_value_cut_alone_is_said() {
        let long = "x".repeat(MAX_ECHOED_CHARS + 1);
        let err = ApiError::NotConnected;
        for echo in [
            JobEcho {
                job_id: Some(&long),
                sub: Some("42"),
                calendar_id: "primary",
                message_id: "m",
            },
            JobEcho {
                job_id: Some("j"),
                sub: Some(&long),
                calendar_id: "primary",
                message_id: "m",
            },
            JobEcho {
                job_id: Some("j"),
                sub: Some("42"),
                calendar_id: &long,
                message_id: "m",
            },
        ] {
            assert_eq!(job_failed(&echo, &err).detail["truncated"], json!(true), "{echo:?}");
        }
        let exact = "x".repeat(MAX_ECHOED_CHARS);
        let whole = JobEcho {
            job_id: Some(&exact),
            sub: Some(&exact),
            calendar_id: &exact,
            message_id: "m",
        };
        assert!(job_failed(&whole, &err).detail.get("truncated").is_none());
        let created = job_created("j", &Sub::parse("42").unwrap(), &long, &json!({"id": "e1"}), false);
        assert_eq!(created.detail["truncated"], json!(true));
        assert_eq!(created.detail["calendar_event_id"], "e1");
    }

    #[test]
    fn unreadable_jobs_are_kept_apart_by_their_message_id() {
        let err = ApiError::InvalidJob("bad".into());
        let one = job_failed(
            &JobEcho {
                message_id: "m1",
                ..Default::default()
            },
            &err,
        );
        let two = job_failed(
            &JobEcho {
                message_id: "m2",
                ..Default::default()
            },
            &err,
        );
        assert_ne!(one.detail["event_id"], two.detail["event_id"]);
        let named = JobEcho {
            job_id: Some("j"),
            message_id: "m1",
            ..Default::default()
        };
        let renamed = JobEcho {
            job_id: Some("j"),
            message_id: "m2",
            ..Default::default()
        };
        assert_eq!(
            job_failed(&named, &err).detail["event_id"],
            job_failed(&renamed, &err).detail["event_id"]
        );
    }
}
