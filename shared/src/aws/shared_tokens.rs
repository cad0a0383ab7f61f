//! The fleet's shared access tokens in the tokens table: one item per user and scope
//! set (`access#<client>#<sub>#<scope key>`, outside the `grant#` prefix the stream
//! filter feeding `publisher` matches), holding the KMS-sealed token (purpose
//! `access_token`, never plaintext), what it carries, the grant it came from, and
//! the lease on refreshing it. Every item expires by the table's TTL (`expires_at`)
//! an hour after the token or the lease it holds.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::call;
use super::dynamo::DynamoGrants;
use super::item::Item;
use crate::grant::Ciphertext;
use crate::ports::{Lease, SharedSlot, SharedToken, SharedTokens, StoreError};
use crate::types::Sub;

/// TTL deletes items this long after the token (or lease) they hold has run out.
const TTL_MARGIN_SECS: i64 = 3600;

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The shared tokens of the table `grants` works on.
pub struct DynamoSharedTokens {
    table: DynamoGrants,
}

impl DynamoSharedTokens {
    pub fn new(table: DynamoGrants) -> Self {
        Self { table }
    }

    fn key(&self, sub: &Sub, key: &str) -> AttributeValue {
        AttributeValue::S(format!("access#{}#{}#{key}", self.table.client_id, sub.as_str()))
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn slot(item: &Item) -> Result<SharedSlot, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let token = match item.get("access_token_ct").and_then(|v| v.as_b().ok()) {
        None => None,
        Some(ciphertext) => Some(SharedToken {
            ciphertext: Ciphertext(ciphertext.as_ref().to_vec()),
            expires_at: number(item, "access_expires_at")
                .ok_or_else(|| StoreError::Corrupt("shared token without expiry".into()))?,
            scopes: item
                .get("scopes")
                .and_then(|v| v.as_ss().ok())
                .map(|ss| ss.iter().collect())
                .unwrap_or_default(),
            source: text("source").unwrap_or_default(),
        }),
    };
    let lease = match (text("lease_owner"), number(item, "lease_until")) {
        (Some(owner), Some(until_ms)) => Some(Lease { owner, until_ms }),
        _ => None,
    };
    Ok(SharedSlot { token, lease })
}

#[async_trait]
impl SharedTokens for DynamoSharedTokens {
    async fn read(&self, sub: &Sub, key: &str) -> Result<SharedSlot, StoreError> {
        match self.table.get(self.key(sub, key)).await? {
            Some(item) => slot(&item),
            None => Ok(SharedSlot::default()),
        }
    }

    async fn lease(&self, sub: &Sub, key: &str, lease: &Lease, now_ms: i64) -> Result<bool, StoreError> {
        let request = self
            .table
            .dynamodb
            .update_item()
            .table_name(&self.table.table)
            .key("pk", self.key(sub, key))
            .update_expression("SET lease_owner = :owner, lease_until = :until, expires_at = :ttl")
            .condition_expression("attribute_not_exists(lease_until) OR lease_until < :now")
            .expression_attribute_values(":owner", AttributeValue::S(lease.owner.clone()))
            .expression_attribute_values(":until", n(lease.until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":ttl", n(lease.until_ms / 1000 + TTL_MARGIN_SECS));
        match call("DynamoDB", request.send()).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn store(&self, sub: &Sub, key: &str, token: &SharedToken, owner: &str) -> Result<(), StoreError> {
        let mut put = self
            .table
            .dynamodb
            .put_item()
            .table_name(&self.table.table)
            .item("pk", self.key(sub, key))
            .item("sub", AttributeValue::S(sub.as_str().to_owned()))
            .item(
                "access_token_ct",
                AttributeValue::B(Blob::new(token.ciphertext.0.clone())),
            )
            .item("access_expires_at", n(token.expires_at))
            .item("source", AttributeValue::S(token.source.clone()))
            .item("expires_at", n(token.expires_at + TTL_MARGIN_SECS))
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()));
        if !token.scopes.is_empty() {
            put = put.item("scopes", AttributeValue::Ss(token.scopes.iter().cloned().collect()));
        }
        call("DynamoDB", put.send()).await.map(|_| ())
    }

    async fn release(&self, sub: &Sub, key: &str, owner: &str) -> Result<(), StoreError> {
        let request = self
            .table
            .dynamodb
            .update_item()
            .table_name(&self.table.table)
            .key("pk", self.key(sub, key))
            .update_expression("REMOVE lease_owner, lease_until")
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()));
        match call("DynamoDB", request.send()).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn discard(&self, sub: &Sub, key: &str, ciphertext: &Ciphertext) -> Result<(), StoreError> {
        let request = self
            .table
            .dynamodb
            .delete_item()
            .table_name(&self.table.table)
            .key("pk", self.key(sub, key))
            .condition_expression("access_token_ct = :ct")
            .expression_attribute_values(":ct", AttributeValue::B(Blob::new(ciphertext.0.clone())));
        call("DynamoDB", request.send()).await.map(|_| ())
    }
}
