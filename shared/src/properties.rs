//! Property tests (bounded fuzzing) of everything that parses untrusted input: the
//! JWT header and shape checks, the event validator and request parsing. They run in
//! `cargo test`; `PROPTEST_CASES` raises the case count for longer runs.

use proptest::prelude::*;
use serde_json::json;

use crate::event::validate;
use crate::google::id_token::signing_kid;
use crate::http::{bearer, json_object, query_param};
use crate::types::{EventId, IdToken, IdempotencyKey, ScopeSet};

fn jwt_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{0,40}",
        any::<Vec<u8>>().prop_map(|b| data_encoding::BASE64URL_NOPAD.encode(&b)),
        "\\PC{0,20}",
    ];
    prop::collection::vec(segment, 0..5).prop_map(|parts| parts.join("."))
}

fn date() -> impl Strategy<Value = (i32, u8, u8)> {
    (2000i32..2100, 1u8..=12, 1u8..=28)
}

proptest! {
    #[test]
    fn token_shape_and_header_checks_never_panic(raw in jwt_like()) {
        if let Some(token) = IdToken::parse(&raw) {
            let _ = signing_kid(token.as_str());
        }
        let _ = signing_kid(&raw);
    }

    #[test]
    fn any_header_other_than_rs256_is_refused(alg in "[A-Za-z0-9]{0,8}", kid in "[a-z0-9]{1,8}") {
        prop_assume!(alg != "RS256");
        let header = data_encoding::BASE64URL_NOPAD.encode(json!({"alg": alg, "kid": kid}).to_string().as_bytes());
        let token = format!("{header}.e30.c2ln");
        prop_assert!(signing_kid(&token).is_err());
    }

    #[test]
    fn event_validation_never_panics_on_json_bytes(body in any::<Vec<u8>>()) {
        if let Ok(value) = serde_json::from_slice(&body) {
            let _ = validate(value);
        }
    }

    #[test]
    fn event_validation_never_panics_on_json_shapes(
        start in prop::option::of(prop_oneof![Just(json!(null)), "\\PC{0,30}".prop_map(|s| json!({"dateTime": s})), "\\PC{0,12}".prop_map(|s| json!({"date": s}))]),
        end in prop::option::of(prop_oneof![Just(json!(1)), "\\PC{0,30}".prop_map(|s| json!({"dateTime": s})), "\\PC{0,12}".prop_map(|s| json!({"date": s}))]),
    ) {
        let mut event = serde_json::Map::new();
        if let Some(s) = start { event.insert("start".into(), s); }
        if let Some(e) = end { event.insert("end".into(), e); }
        if let Err(errors) = validate(serde_json::Value::Object(event)) {
            prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
        }
    }

    #[test]
    fn all_day_events_are_valid_exactly_when_end_is_after_start(a in date(), b in date()) {
        let fmt = |(y, m, d): (i32, u8, u8)| format!("{y:04}-{m:02}-{d:02}");
        let body = json!({"start": {"date": fmt(a)}, "end": {"date": fmt(b)}});
        prop_assert_eq!(validate(body).is_ok(), b > a);
    }

    #[test]
    fn timed_events_compare_instants_across_offsets(start in 0i64..4_000_000_000, minutes in -600i64..600, offset in -12i64..=12) {
        let to_rfc3339 = |t: i64, off_h: i64| {
            let offset = time::UtcOffset::from_hms(off_h as i8, 0, 0).unwrap();
            time::OffsetDateTime::from_unix_timestamp(t).unwrap().to_offset(offset)
                .format(&time::format_description::well_known::Rfc3339).unwrap()
        };
        let end = start + minutes * 60;
        let body = json!({"start": {"dateTime": to_rfc3339(start, 0)}, "end": {"dateTime": to_rfc3339(end, offset)}});
        prop_assert_eq!(validate(body).is_ok(), minutes > 0);
    }

    #[test]
    fn request_parsing_never_panics(body in any::<Vec<u8>>(), auth in "\\PC{0,60}", query in "\\PC{0,60}") {
        let _ = json_object(&body);
        let req = http::Request::builder()
            .uri(format!("/calendar/events?{}", percent_encoding::utf8_percent_encode(&query, percent_encoding::CONTROLS)))
            .header("authorization", auth.as_str())
            .body(lambda_http::Body::Binary(body))
            .unwrap_or_else(|_| http::Request::new(lambda_http::Body::Empty));
        let _ = bearer(&req);
        let _ = query_param(&req, "calendarId");
    }

    #[test]
    fn derived_event_ids_are_always_valid(sub in "\\PC{0,40}", calendar in "\\PC{0,40}", key in "[!-~]{1,255}") {
        let key = IdempotencyKey::parse(&key).unwrap();
        let id = EventId::derive(&sub, &calendar, &key);
        prop_assert!(EventId::parse(id.as_str()).is_some());
    }

    #[test]
    fn scope_union_keeps_both_sides(a in prop::collection::vec("[a-z.:/]{1,20}", 0..6), b in prop::collection::vec("[a-z.:/]{1,20}", 0..6)) {
        let (left, right): (ScopeSet, ScopeSet) = (a.iter().collect(), b.iter().collect());
        let union = left.union(&right);
        prop_assert!(left.missing_from(&union).is_empty() && right.missing_from(&union).is_empty());
    }
}
