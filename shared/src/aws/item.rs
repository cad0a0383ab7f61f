//! The DynamoDB item of a grant (one per Google account per client): the profile,
//! `granted_scopes` (string set), the refresh-token ciphertext (binary), its
//! non-reversible identifiers and expiry, `status` (+ `status_reason`), `version`,
//! timestamps, when the token was last used, the expiry a notice was recorded for,
//! and the sparse sweep-index attributes (`sweep_bucket`, `sweep_at`) that place an
//! active grant at its next due time. Also reads the stream's images of an item.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::grant::{Ciphertext, Grant, GrantStatus, Profile, SealedToken, SweepPolicy, TokenIds};
use crate::ports::StoreError;
use crate::types::Sub;

pub type Item = HashMap<String, AttributeValue>;

/// Set on a grant just before a deletion that is not the user's own, so the
/// stream's old image says why it went.
pub const DELETE_REASON: &str = "delete_reason";
/// The attributes of the sparse `sweep-due` index.
pub const SWEEP_BUCKET: &str = "sweep_bucket";
pub const SWEEP_AT: &str = "sweep_at";
pub const LAST_USED_AT: &str = "last_used_at";
/// The key prefix of grant items (the stream filter feeding `publisher` matches it).
pub const GRANT_PREFIX: &str = "grant#";

pub fn grant_key(client_id: &str, sub: &str) -> String {
    format!("{GRANT_PREFIX}{client_id}#{sub}")
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The item of `g` as written at `written_at` (Unix s; it decides the sweep bucket).
pub fn encode(client_id: &str, g: &Grant, policy: &SweepPolicy, written_at: i64) -> Item {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&grant_key(client_id, g.sub().as_str()))),
        ("sub".to_owned(), s(g.sub().as_str())),
        ("client_id".to_owned(), s(client_id)),
        (
            "email_verified".to_owned(),
            AttributeValue::Bool(g.profile.email_verified),
        ),
        ("status".to_owned(), s(g.status.as_str())),
        ("version".to_owned(), number(g.version as i64)),
        ("created_at".to_owned(), s(&g.created_at)),
        ("updated_at".to_owned(), s(&g.updated_at)),
    ]);
    let optional = [
        ("email", &g.profile.email),
        ("name", &g.profile.name),
        ("picture", &g.profile.picture),
        ("hd", &g.profile.hd),
        ("status_reason", &g.status_reason),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            item.insert(name.to_owned(), s(v));
        }
    }
    // A DynamoDB string set cannot be empty: no scopes means no attribute.
    if !g.scopes.is_empty() {
        item.insert(
            "granted_scopes".into(),
            AttributeValue::Ss(g.scopes.iter().cloned().collect()),
        );
    }
    if let Some(token) = &g.refresh_token {
        item.insert(
            "refresh_token_ct".into(),
            AttributeValue::B(Blob::new(token.ciphertext.0.clone())),
        );
        item.insert("refresh_token_hash".into(), s(&token.ids.hash));
        item.insert("refresh_token_prefix_hash".into(), s(&token.ids.prefix_hash));
        if let Some(issued_ms) = token.issued_ms {
            item.insert("refresh_token_issued_ms".into(), number(issued_ms));
        }
        if let Some(expires_at) = token.expires_at {
            item.insert("refresh_token_expires_at".into(), number(expires_at));
        }
    }
    if let Some(last_used_at) = g.last_used_at {
        item.insert(LAST_USED_AT.into(), number(last_used_at));
    }
    if let Some(noticed) = g.expiry_noticed {
        item.insert("expiry_notice_for".into(), number(noticed));
    }
    if let Some(slot) = g.sweep_slot(policy, written_at) {
        item.insert(SWEEP_BUCKET.into(), s(&slot.bucket));
        item.insert(SWEEP_AT.into(), number(slot.due_at));
    }
    item
}

pub fn decode(item: &Item) -> Result<Grant, StoreError> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let n = |name: &str| -> Result<Option<i64>, StoreError> {
        item.get(name)
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("{name} is not a number")))
            })
            .transpose()
    };
    let required = |name: &str| s(name).ok_or_else(|| StoreError::Corrupt(format!("{name} missing")));
    let status = required("status")?;
    let status = GrantStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("unknown status {status}")))?;
    let version = n("version")?
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| StoreError::Corrupt("version missing".into()))?;
    let ciphertext = item
        .get("refresh_token_ct")
        .and_then(|v| v.as_b().ok())
        .map(|b| Ciphertext(b.as_ref().to_vec()));
    let refresh_token = match (ciphertext, s("refresh_token_hash"), s("refresh_token_prefix_hash")) {
        (Some(ciphertext), Some(hash), Some(prefix_hash)) => Some(SealedToken {
            ciphertext,
            ids: TokenIds { hash, prefix_hash },
            issued_ms: n("refresh_token_issued_ms")?,
            expires_at: n("refresh_token_expires_at")?,
        }),
        (None, _, _) => None,
        _ => return Err(StoreError::Corrupt("refresh token without identifiers".into())),
    };
    let sub = Sub::parse(&required("sub")?).ok_or_else(|| StoreError::Corrupt("sub is not a Google sub".into()))?;
    Ok(Grant {
        profile: Profile {
            email: s("email"),
            email_verified: item
                .get("email_verified")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            name: s("name"),
            picture: s("picture"),
            hd: s("hd"),
            ..Profile::bare(sub)
        },
        scopes: item
            .get("granted_scopes")
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().collect())
            .unwrap_or_default(),
        refresh_token,
        status,
        status_reason: s("status_reason"),
        version,
        created_at: required("created_at")?,
        updated_at: required("updated_at")?,
        last_used_at: n(LAST_USED_AT)?,
        expiry_noticed: n("expiry_notice_for")?,
    })
}

/// A stream record's image (as `aws_lambda_events` reads it) as an SDK item.
pub fn from_image(image: serde_dynamo::Item) -> Item {
    image.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::DAY;
    use crate::secret::Secret;
    use crate::types::ScopeSet;

    const T0: i64 = 1_900_000_000;

    fn grant(expires_at: Option<i64>) -> Grant {
        let token = Secret::new("1//refresh");
        Grant {
            profile: Profile {
                email: Some("u1@example.com".into()),
                email_verified: true,
                ..Profile::bare(Sub::parse("u1").unwrap())
            },
            scopes: ["openid", "email"].into_iter().collect::<ScopeSet>(),
            refresh_token: Some(SealedToken {
                ciphertext: Ciphertext(vec![0, 1, 2, 255]),
                ids: TokenIds::of(&token),
                issued_ms: Some(T0 * 1000 - 60_000),
                expires_at,
            }),
            status: GrantStatus::Active,
            status_reason: None,
            version: 3,
            created_at: "2030-01-01T00:00:00Z".into(),
            updated_at: "2030-01-02T00:00:00Z".into(),
            last_used_at: Some(T0),
            expiry_noticed: None,
        }
    }

    #[test]
    fn a_grant_survives_its_item() {
        for expires_at in [None, Some(T0 + 3 * DAY)] {
            let grant = grant(expires_at);
            let item = encode("client", &grant, &SweepPolicy::default(), T0);
            assert_eq!(decode(&item).unwrap(), grant);
        }
    }

    #[test]
    fn only_grants_that_can_act_offline_sit_in_the_sweep_index() {
        let policy = SweepPolicy::default();
        let item = encode("client", &grant(None), &policy, T0);
        assert_eq!(item[SWEEP_AT], number(T0 + 150 * DAY));
        assert!(item[SWEEP_BUCKET].as_s().unwrap().contains('#'));
        let dead = grant(None)
            .dead("invalid_grant", time::OffsetDateTime::now_utc())
            .unwrap();
        let item = encode("client", &dead, &policy, T0);
        assert!(!item.contains_key(SWEEP_BUCKET) && !item.contains_key(SWEEP_AT));
    }

    #[test]
    fn a_stream_image_reads_as_the_item() {
        let image: serde_dynamo::Item = serde_json::from_value(serde_json::json!({
            "sub": {"S": "u1"}, "status": {"S": "active"}, "version": {"N": "3"},
            "created_at": {"S": "a"}, "updated_at": {"S": "b"}, "email_verified": {"BOOL": true},
            "granted_scopes": {"SS": ["openid"]},
            "refresh_token_ct": {"B": "AAEC/w=="}, "refresh_token_hash": {"S": "h"},
            "refresh_token_prefix_hash": {"S": "p"}, "refresh_token_expires_at": {"N": "1900259200"}
        }))
        .unwrap();
        let decoded = decode(&from_image(image)).unwrap();
        let token = decoded.refresh_token.unwrap();
        assert_eq!(token.ciphertext, Ciphertext(vec![0, 1, 2, 255]));
        assert_eq!(token.expires_at, Some(1_900_259_200));
        assert_eq!(decoded.version, 3);
    }
}
