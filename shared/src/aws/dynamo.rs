//! The DynamoDB table behind the grant store and the RISC replay guard. Every write
//! of a grant is conditional on the version that was read; `jti` records carry a
//! TTL. Two KEYS_ONLY indexes find a grant by its refresh token's identifiers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::call;
use super::item::{DELETE_REASON, Item, decode, encode, from_json, grant_key};
use super::json_rpc::JsonRpc;
use crate::grant::Grant;
use crate::ports::{GrantStore, ReplayGuard, StoreError, TokenLookup};

/// RISC `jti`s are remembered this long (Google retries delivery for days; tokens
/// older than 7 days are refused anyway).
const JTI_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// BatchGetItem reads at most this many items per call.
const BATCH_GET_MAX: usize = 100;
pub const TOKEN_HASH_INDEX: &str = "refresh-token-hash";
pub const TOKEN_PREFIX_INDEX: &str = "refresh-token-prefix";

/// Writes and queries go through the SDK; the reads on every warm path go through
/// `reads` (`json_rpc`).
#[derive(Clone)]
pub struct DynamoGrants {
    dynamodb: aws_sdk_dynamodb::Client,
    reads: Arc<JsonRpc>,
    table: String,
    client_id: String,
}

impl DynamoGrants {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, reads: JsonRpc, table: String, client_id: String) -> Self {
        Self {
            dynamodb,
            reads: Arc::new(reads),
            table,
            client_id,
        }
    }

    /// A strongly consistent `GetItem` of the item with primary key `pk`.
    async fn get(&self, pk: &str) -> Result<Option<Item>, StoreError> {
        let request = serde_json::json!({
            "TableName": self.table,
            "Key": {"pk": {"S": pk}},
            "ConsistentRead": true,
        });
        let answer = self.reads.call("GetItem", request.to_string().into_bytes()).await?;
        match answer.get("Item") {
            None => Ok(None),
            Some(serde_json::Value::Object(item)) => from_json(item).map(Some),
            Some(_) => Err(StoreError::Corrupt("GetItem answer".into())),
        }
    }

    fn key(&self, sub: &str) -> AttributeValue {
        AttributeValue::S(grant_key(&self.client_id, sub))
    }

    fn jti_key(&self, jti: &str) -> String {
        format!("risc-jti#{}#{jti}", self.client_id)
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
        let item = self.get(&grant_key(&self.client_id, sub)).await?;
        item.map(|item| decode(&item)).transpose()
    }

    /// One strongly consistent `BatchGetItem` per 100 users; keys DynamoDB leaves
    /// unprocessed (throttling, size) are left out for the caller to load alone.
    async fn load_many(&self, subs: &[String]) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::with_capacity(subs.len());
        for chunk in subs.chunks(BATCH_GET_MAX) {
            let keys: Vec<serde_json::Value> = chunk
                .iter()
                .map(|sub| serde_json::json!({"pk": {"S": grant_key(&self.client_id, sub)}}))
                .collect();
            let mut tables = serde_json::Map::new();
            tables.insert(
                self.table.clone(),
                serde_json::json!({"Keys": keys, "ConsistentRead": true}),
            );
            let request = serde_json::json!({ "RequestItems": tables });
            let answer = self
                .reads
                .call("BatchGetItem", request.to_string().into_bytes())
                .await?;
            let items = answer["Responses"][&self.table]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for item in items {
                let item = item
                    .as_object()
                    .ok_or_else(|| StoreError::Corrupt("BatchGetItem answer".into()))?;
                grants.push(decode(&from_json(item)?)?);
            }
        }
        Ok(grants)
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
        Ok(self.get(&self.jti_key(jti)).await?.is_some())
    }

    async fn record(&self, jti: &str) -> Result<(), StoreError> {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + JTI_TTL.as_secs() as i64;
        let request = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.jti_key(jti)))
            .item("expires_at", AttributeValue::N(expires.to_string()));
        call("DynamoDB", request.send()).await.map(|_| ())
    }
}
