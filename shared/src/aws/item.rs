//! The DynamoDB item of a grant (one per Google account per client): the profile,
//! `granted_scopes` (string set), the refresh-token ciphertext (binary) and its
//! non-reversible identifiers, `status` (+ `status_reason`), `version`, timestamps.
//! Also decodes the JSON form of an item (`GetItem` answers, the stream's images).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use data_encoding::BASE64;
use serde_json::Value;

use crate::grant::{Ciphertext, Grant, GrantStatus, Profile, SealedToken, TokenIds};
use crate::ports::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Set on a grant just before a deletion that is not the user's own, so the
/// stream's old image says why it went.
pub const DELETE_REASON: &str = "delete_reason";

pub fn grant_key(client_id: &str, sub: &str) -> String {
    format!("grant#{client_id}#{sub}")
}

pub fn encode(client_id: &str, g: &Grant) -> Item {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&grant_key(client_id, g.sub()))),
        ("sub".to_owned(), s(g.sub())),
        ("client_id".to_owned(), s(client_id)),
        (
            "email_verified".to_owned(),
            AttributeValue::Bool(g.profile.email_verified),
        ),
        ("status".to_owned(), s(g.status.as_str())),
        ("version".to_owned(), AttributeValue::N(g.version.to_string())),
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
    }
    item
}

pub fn decode(item: &Item) -> Result<Grant, StoreError> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let required = |name: &str| s(name).ok_or_else(|| StoreError::Corrupt(format!("{name} missing")));
    let status = required("status")?;
    let status = GrantStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("unknown status {status}")))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("version missing".into()))?;
    let ciphertext = item
        .get("refresh_token_ct")
        .and_then(|v| v.as_b().ok())
        .map(|b| Ciphertext(b.as_ref().to_vec()));
    let refresh_token = match (ciphertext, s("refresh_token_hash"), s("refresh_token_prefix_hash")) {
        (Some(ciphertext), Some(hash), Some(prefix_hash)) => Some(SealedToken {
            ciphertext,
            ids: TokenIds { hash, prefix_hash },
        }),
        (None, _, _) => None,
        _ => return Err(StoreError::Corrupt("refresh token without identifiers".into())),
    };
    Ok(Grant {
        profile: Profile {
            sub: required("sub")?,
            email: s("email"),
            email_verified: item
                .get("email_verified")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            name: s("name"),
            picture: s("picture"),
            hd: s("hd"),
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
    })
}

/// An item in DynamoDB's JSON form (`{"pk": {"S": "..."}, ...}`: a `GetItem`
/// answer, a stream image) as an SDK item.
pub fn from_json(image: &serde_json::Map<String, Value>) -> Result<Item, StoreError> {
    image
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute(value)?)))
        .collect()
}

fn attribute(value: &Value) -> Result<AttributeValue, StoreError> {
    let bad = || StoreError::Corrupt("item attribute".into());
    let (kind, inner) = value.as_object().and_then(|o| o.iter().next()).ok_or_else(bad)?;
    let text = || inner.as_str().map(str::to_owned).ok_or_else(bad);
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(true),
        "B" => AttributeValue::B(Blob::new(BASE64.decode(text()?.as_bytes()).map_err(|_| bad())?)),
        "SS" => AttributeValue::Ss(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        _ => AttributeValue::Null(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_grant_survives_the_item_and_the_stream_image() {
        let token = Secret::new("1//refresh");
        let grant = Grant {
            profile: Profile {
                sub: "u1".into(),
                email: Some("u1@example.com".into()),
                email_verified: true,
                name: None,
                picture: None,
                hd: None,
            },
            scopes: ["openid", "email"].into_iter().collect(),
            refresh_token: Some(SealedToken {
                ciphertext: Ciphertext(vec![0, 1, 2, 255]),
                ids: TokenIds::of(&token),
            }),
            status: GrantStatus::Active,
            status_reason: None,
            version: 3,
            created_at: "2030-01-01T00:00:00Z".into(),
            updated_at: "2030-01-02T00:00:00Z".into(),
        };
        let item = encode("client", &grant);
        assert_eq!(decode(&item).unwrap(), grant);
        let image = serde_json::json!({
            "sub": {"S": "u1"}, "status": {"S": "active"}, "version": {"N": "3"},
            "created_at": {"S": "a"}, "updated_at": {"S": "b"}, "email_verified": {"BOOL": true},
            "granted_scopes": {"SS": ["openid"]},
            "refresh_token_ct": {"B": "AAEC/w=="}, "refresh_token_hash": {"S": "h"},
            "refresh_token_prefix_hash": {"S": "p"}
        });
        let decoded = decode(&from_json(image.as_object().unwrap()).unwrap()).unwrap();
        assert_eq!(
            decoded.refresh_token.unwrap().ciphertext,
            Ciphertext(vec![0, 1, 2, 255])
        );
        assert_eq!(decoded.version, 3);
    }
}
