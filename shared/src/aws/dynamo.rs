//! The DynamoDB table behind the grant store and the RISC replay guard. Every write
//! of a grant is conditional on the version that was read; `jti` records carry a
//! TTL. Two KEYS_ONLY indexes find a grant by its refresh token's identifiers.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::call;
use super::item::{DELETE_REASON, decode, encode, grant_key};
use crate::grant::Grant;
use crate::ports::{GrantStore, ReplayGuard, StoreError, TokenLookup};

/// RISC `jti`s are remembered this long (Google retries delivery for days; tokens
/// older than 7 days are refused anyway).
const JTI_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const TOKEN_HASH_INDEX: &str = "refresh-token-hash";
pub const TOKEN_PREFIX_INDEX: &str = "refresh-token-prefix";

#[derive(Clone)]
pub struct DynamoGrants {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    client_id: String,
}

impl DynamoGrants {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: String, client_id: String) -> Self {
        Self {
            dynamodb,
            table,
            client_id,
        }
    }

    fn key(&self, sub: &str) -> AttributeValue {
        AttributeValue::S(grant_key(&self.client_id, sub))
    }

    fn jti_key(&self, jti: &str) -> AttributeValue {
        AttributeValue::S(format!("risc-jti#{}#{jti}", self.client_id))
    }

    async fn delete_at(&self, sub: &str, version: u64) -> Result<(), StoreError> {
        let request = self
            .dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", self.key(sub))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()));
        call("DynamoDB", request.send()).await.map(|_| ())
    }
}

#[async_trait]
impl GrantStore for DynamoGrants {
    async fn load(&self, sub: &str) -> Result<Option<Grant>, StoreError> {
        let request = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", self.key(sub))
            .consistent_read(true);
        let out = call("DynamoDB", request.send()).await?;
        out.item.map(|item| decode(&item)).transpose()
    }

    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError> {
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(&self.client_id, grant)));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
        };
        call("DynamoDB", put.send()).await.map(|_| ())
    }

    async fn remove(&self, grant: &Grant, reason: &str) -> Result<(), StoreError> {
        if reason == "user" {
            return self.delete_at(grant.sub(), grant.version).await;
        }
        // The stream's old image of the delete must say why: mark, then delete.
        let mut marked = grant.clone();
        marked.version += 1;
        let mut item = encode(&self.client_id, &marked);
        item.insert(DELETE_REASON.into(), AttributeValue::S(reason.to_owned()));
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(grant.version.to_string()));
        call("DynamoDB", put.send()).await?;
        self.delete_at(grant.sub(), marked.version).await
    }

    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<String>, StoreError> {
        let (index, attribute, value) = match lookup {
            TokenLookup::Hash(v) => (TOKEN_HASH_INDEX, "refresh_token_hash", v),
            TokenLookup::PrefixHash(v) => (TOKEN_PREFIX_INDEX, "refresh_token_prefix_hash", v),
        };
        let request = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", attribute)
            .expression_attribute_values(":id", AttributeValue::S(value.clone()))
            .limit(1);
        let out = call("DynamoDB", request.send()).await?;
        let prefix = grant_key(&self.client_id, "");
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| item.get("pk")?.as_s().ok()?.strip_prefix(&prefix).map(str::to_owned))
            .next())
    }
}

#[async_trait]
impl ReplayGuard for DynamoGrants {
    async fn seen(&self, jti: &str) -> Result<bool, StoreError> {
        let request = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", self.jti_key(jti))
            .consistent_read(true);
        Ok(call("DynamoDB", request.send()).await?.item.is_some())
    }

    async fn record(&self, jti: &str) -> Result<(), StoreError> {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + JTI_TTL.as_secs() as i64;
        let request = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", self.jti_key(jti))
            .item("expires_at", AttributeValue::N(expires.to_string()));
        call("DynamoDB", request.send()).await.map(|_| ())
    }
}
