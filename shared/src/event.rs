//! Validation of a Google Calendar event body before anything is sent to Google
//! (docs/api.md, "POST /calendar/events"): a JSON object whose `start` and `end` each hold exactly one of
//! `dateTime` (RFC 3339) or `date` (YYYY-MM-DD), of the same kind, with end after
//! start. Everything else is passed to Google untouched.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::error::FieldError;

/// An event body that passed validation. Only built by [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent(Map<String, Value>);

impl ValidEvent {
    pub fn into_inner(self) -> Map<String, Value> {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum When {
    Date(Date),
    Instant(OffsetDateTime),
}

/// Checks an event that is already JSON (a body that is not JSON at all is the
/// caller's `invalid_request`).
pub fn validate(value: Value) -> Result<ValidEvent, Vec<FieldError>> {
    let Value::Object(event) = value else {
        return Err(vec![FieldError {
            field: None,
            message: "The event must be a JSON object.".into(),
        }]);
    };

    let mut errors = Vec::new();
    let start = read_when(&event, "start", &mut errors);
    let end = read_when(&event, "end", &mut errors);
    if let (Some(start), Some(end)) = (start, end) {
        match (start, end) {
            (When::Date(_), When::Instant(_)) | (When::Instant(_), When::Date(_)) => {
                errors.push(FieldError::new(
                    "end",
                    "start and end must both use 'date' or both use 'dateTime'.",
                ));
            }
            _ if end <= start => errors.push(FieldError::new("end", "end must be after start.")),
            _ => {}
        }
    }
    for field in ["summary", "description", "location"] {
        if event.get(field).is_some_and(|v| !v.is_string()) {
            errors.push(FieldError::new(field, format!("'{field}' must be a string.")));
        }
    }
    for field in ["attendees", "recurrence"] {
        if event.get(field).is_some_and(|v| !v.is_array()) {
            errors.push(FieldError::new(field, format!("'{field}' must be a list.")));
        }
    }
    if let Some(Value::Array(attendees)) = event.get("attendees")
        && attendees.iter().any(|a| !a["email"].is_string())
    {
        errors.push(FieldError::new("attendees", "each attendee needs an 'email' string."));
    }
    if errors.is_empty() {
        Ok(ValidEvent(event))
    } else {
        Err(errors)
    }
}

fn read_when(event: &Map<String, Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<When> {
    let Some(Value::Object(when)) = event.get(field) else {
        errors.push(FieldError::new(
            field,
            format!("'{field}' is required and must be an object."),
        ));
        return None;
    };
    match (when.get("date"), when.get("dateTime")) {
        (Some(Value::String(date)), None) => match parse_date(date) {
            Some(d) => Some(When::Date(d)),
            None => {
                errors.push(FieldError::new(
                    field,
                    format!("'{field}.date' must be a real calendar date, YYYY-MM-DD."),
                ));
                None
            }
        },
        (None, Some(Value::String(date_time))) => match parse_date_time(date_time) {
            Some(t) => Some(When::Instant(t)),
            None => {
                errors.push(FieldError::new(
                    field,
                    format!("'{field}.dateTime' must be an RFC 3339 timestamp with an offset."),
                ));
                None
            }
        },
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                field,
                format!("'{field}' must have exactly one of 'date' or 'dateTime'."),
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                field,
                format!("'{field}' needs a 'date' or 'dateTime' string."),
            ));
            None
        }
    }
}

/// RFC 3339's grammar, with the `T` Google requires between date and time (the
/// `time` crate also takes a space there).
fn parse_date_time(s: &str) -> Option<OffsetDateTime> {
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None;
    }
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(event: Value) -> Result<ValidEvent, Vec<FieldError>> {
        validate(event)
    }

    fn fields(event: Value) -> Vec<Option<String>> {
        check(event).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn valid_timed_and_all_day_events() {
        // Offsets count: 10:30+01:00 is before 10:00Z.
        assert!(check(json!({"summary": "x", "start": {"dateTime": "2031-01-01T10:00:00Z"}, "end": {"dateTime": "2031-01-01T10:30:00+01:00"}})).is_err());
        assert!(
            check(
                json!({"start": {"dateTime": "2031-01-01T10:00:00Z"}, "end": {"dateTime": "2031-01-01T12:30:00+01:00"}})
            )
            .is_ok()
        );
        assert!(check(json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}, "attendees": [{"email": "a@b.c"}]})).is_ok());
    }

    #[test]
    fn each_invalid_class_names_its_field() {
        let t = |s: &str| json!({"dateTime": s});
        assert_eq!(
            fields(json!({"end": t("2031-01-01T10:00:00Z")})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01T10:00:00Z")})),
            [Some("end".into())]
        );
        assert_eq!(
            fields(json!({"start": {"date": "2031-02-30"}, "end": {"date": "2031-03-01"}})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01 10:00"), "end": t("2031-01-01T11:00:00Z")})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01 10:00:00Z"), "end": t("2031-01-01T11:00:00Z")})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01T10:00:00"), "end": t("2031-01-01T11:00:00Z")})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(
                json!({"start": {"date": "2031-01-01", "dateTime": "2031-01-01T10:00:00Z"}, "end": {"date": "2031-01-02"}})
            ),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": {"date": "2031-01-01"}, "end": t("2031-01-02T10:00:00Z")})),
            [Some("end".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01T10:00:00Z"), "end": t("2031-01-01T10:00:00Z")})),
            [Some("end".into())]
        );
        assert_eq!(
            fields(json!({"start": t("2031-01-01T10:00:00Z"), "end": t("2031-01-01T09:00:00Z")})),
            [Some("end".into())]
        );
        assert_eq!(
            fields(json!({"start": {"date": "2031-01-02"}, "end": {"date": "2031-01-02"}})),
            [Some("end".into())]
        );
        assert_eq!(
            fields(json!({"start": {"date": 20310101}, "end": {"date": "2031-01-02"}})),
            [Some("start".into())]
        );
        assert_eq!(
            fields(json!({"start": "2031-01-01", "end": {"date": "2031-01-02"}})),
            [Some("start".into())]
        );
    }

    #[test]
    fn non_objects_are_refused_with_a_message() {
        for body in [json!([1]), json!("x"), Value::Null, json!(3)] {
            let errors = validate(body.clone()).unwrap_err();
            assert!(errors.iter().all(|e| !e.message.is_empty()), "{body}");
        }
    }
}
