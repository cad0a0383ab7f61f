//! The DynamoDB table behind the grant store and the RISC replay guard. Every write
//! of a grant is conditional on the version that was read; recording a use is an
//! update that keeps the version; `jti` records carry a TTL. Two KEYS_ONLY indexes
//! find a grant by its refresh token's identifiers. Reads are strongly consistent.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use time::OffsetDateTime;

use super::call;
use super::item::{DELETE_REASON, Item, LAST_USED_AT, SWEEP_AT, SWEEP_BUCKET, decode, encode, grant_key};
use crate::grant::{Grant, RemovalReason, SweepPolicy};
use crate::ports::{GrantStore, ReplayGuard, StoreError};
use crate::security::TokenLookup;
use crate::types::Sub;

/// RISC `jti`s are remembered this long (Google retries delivery for days; tokens
/// older than 7 days are refused anyway).
const JTI_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// BatchGetItem reads at most this many items per call.
const BATCH_GET_MAX: usize = 100;
pub const TOKEN_HASH_INDEX: &str = "refresh-token-hash";
pub const TOKEN_PREFIX_INDEX: &str = "refresh-token-prefix";

#[derive(Clone)]
pub struct DynamoGrants {
    pub(super) dynamodb: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    pub(super) client_id: String,
    policy: SweepPolicy,
}

impl DynamoGrants {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: String, client_id: String, policy: SweepPolicy) -> Self {
        Self {
            dynamodb,
            table,
            client_id,
            policy,
        }
    }

    fn key(&self, sub: &Sub) -> AttributeValue {
        AttributeValue::S(grant_key(&self.client_id, sub.as_str()))
    }

    fn jti_key(&self, jti: &str) -> AttributeValue {
        AttributeValue::S(format!("risc-jti#{}#{jti}", self.client_id))
    }

    /// A strongly consistent `GetItem`.
    pub(super) async fn get(&self, key: AttributeValue) -> Result<Option<Item>, StoreError> {
        let request = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", key)
            .consistent_read(true);
        Ok(call("DynamoDB", request.send()).await?.item)
    }

    async fn delete_at(&self, sub: &Sub, version: u64) -> Result<(), StoreError> {
        let request = self
            .dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", self.key(sub))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()));
        call("DynamoDB", request.send()).await.map(|_| ())
    }

    /// The item of `grant` as written now (its `updated_at`, or its last use).
    fn item(&self, grant: &Grant, written_at: i64) -> Item {
        encode(&self.client_id, grant, &self.policy, written_at)
    }
}

/// When a grant was written, for its sweep bucket.
fn written_at(grant: &Grant) -> i64 {
    time::OffsetDateTime::parse(&grant.updated_at, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or_else(|_| OffsetDateTime::now_utc().unix_timestamp())
}

#[async_trait]
impl GrantStore for DynamoGrants {
    async fn load(&self, sub: &Sub) -> Result<Option<Grant>, StoreError> {
        self.get(self.key(sub)).await?.map(|item| decode(&item)).transpose()
    }

    /// One strongly consistent `BatchGetItem` per 100 users; keys DynamoDB leaves
    /// unprocessed (throttling, size) are left out for the caller to load alone.
    async fn load_many(&self, subs: &[Sub]) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::with_capacity(subs.len());
        for chunk in subs.chunks(BATCH_GET_MAX) {
            let keys = chunk
                .iter()
                .map(|sub| Item::from([("pk".to_owned(), self.key(sub))]))
                .collect();
            let wanted = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Other(format!("BatchGetItem request: {e}")))?;
            let request = self.dynamodb.batch_get_item().request_items(&self.table, wanted);
            let out = call("DynamoDB", request.send()).await?;
            let items = out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default();
            for item in &items {
                grants.push(decode(item)?);
            }
        }
        Ok(grants)
    }

    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError> {
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(grant, written_at(grant))));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
        };
        call("DynamoDB", put.send()).await.map(|_| ())
    }

    /// `last_used_at` and the sweep slot it moves, nothing else: the version stays.
    async fn touch(&self, grant: &Grant, now: i64) -> Result<(), StoreError> {
        let item = self.item(grant, now);
        let mut set = Vec::new();
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", self.key(grant.sub()))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(grant.version.to_string()));
        if let Some(used) = item.get(LAST_USED_AT) {
            set.push(format!("{LAST_USED_AT} = :used"));
            update = update.expression_attribute_values(":used", used.clone());
        }
        let expression = match (item.get(SWEEP_BUCKET), item.get(SWEEP_AT)) {
            (Some(bucket), Some(at)) => {
                set.push(format!("{SWEEP_BUCKET} = :b, {SWEEP_AT} = :a"));
                update = update
                    .expression_attribute_values(":b", bucket.clone())
                    .expression_attribute_values(":a", at.clone());
                format!("SET {}", set.join(", "))
            }
            _ if set.is_empty() => format!("REMOVE {SWEEP_BUCKET}, {SWEEP_AT}"),
            _ => format!("SET {} REMOVE {SWEEP_BUCKET}, {SWEEP_AT}", set.join(", ")),
        };
        call("DynamoDB", update.update_expression(expression).send())
            .await
            .map(|_| ())
    }

    async fn remove(&self, grant: &Grant, reason: RemovalReason) -> Result<(), StoreError> {
        if reason == RemovalReason::User {
            return self.delete_at(grant.sub(), grant.version).await;
        }
        // The stream's old image of the delete must say why: mark, then delete.
        let mut marked = grant.clone();
        marked.version += 1;
        let mut item = self.item(&marked, written_at(&marked));
        item.insert(DELETE_REASON.into(), AttributeValue::S(reason.as_str().to_owned()));
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

    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<Sub>, StoreError> {
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
            .filter_map(|item| Sub::parse(item.get("pk")?.as_s().ok()?.strip_prefix(&prefix)?))
            .next())
    }
}

#[async_trait]
impl ReplayGuard for DynamoGrants {
    async fn seen(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.get(self.jti_key(jti)).await?.is_some())
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
