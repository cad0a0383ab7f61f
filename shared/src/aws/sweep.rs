//! The sweep index in the tokens table: the sparse KEYS_ONLY index `sweep-due`
//! (`sweep_bucket` = a day and a shard, `sweep_at` = when the grant is due), which
//! only grants that can act offline are in, so the sweeper reads the grants that
//! are due and nothing else; the sweeper's progress (`sweep#<client>`); and the
//! one-time backfill of grants stored before the index existed (a Scan of grants
//! without the index attributes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use super::call;
use super::dynamo::DynamoGrants;
use super::item::{GRANT_PREFIX, Item, SWEEP_AT, SWEEP_BUCKET, grant_key};
use crate::ports::{Page, StoreError, SweepIndex};
use crate::types::Sub;

pub const SWEEP_INDEX: &str = "sweep-due";

pub struct DynamoSweepIndex {
    table: DynamoGrants,
    /// Items DynamoDB read for the index's queries and the backfill's scans.
    items_read: AtomicU64,
}

impl DynamoSweepIndex {
    pub fn new(table: DynamoGrants) -> Self {
        Self {
            table,
            items_read: AtomicU64::new(0),
        }
    }

    /// Items read from the table or the index so far (for the metric and tests).
    pub fn items_read(&self) -> u64 {
        self.items_read.load(Ordering::Relaxed)
    }

    fn progress_key(&self) -> AttributeValue {
        AttributeValue::S(format!("sweep#{}", self.table.client_id))
    }

    fn subs(&self, items: &[Item]) -> Vec<Sub> {
        let prefix = grant_key(&self.table.client_id, "");
        items
            .iter()
            .filter_map(|item| Sub::parse(item.get("pk")?.as_s().ok()?.strip_prefix(&prefix)?))
            .collect()
    }
}

/// A `LastEvaluatedKey` as an opaque string, and back.
fn cursor(key: Option<&Item>) -> Option<String> {
    let key = key?;
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok().or(v.as_n().ok())).cloned();
    Some(json!({"pk": text("pk"), "b": text(SWEEP_BUCKET), "a": text(SWEEP_AT)}).to_string())
}

fn start_key(after: Option<&str>) -> Result<Option<Item>, StoreError> {
    let Some(after) = after else { return Ok(None) };
    let bad = || StoreError::Other("not a cursor this sweeper gave out".into());
    let value: serde_json::Value = serde_json::from_str(after).map_err(|_| bad())?;
    let mut key = HashMap::new();
    key.insert(
        "pk".to_owned(),
        AttributeValue::S(value["pk"].as_str().ok_or_else(bad)?.to_owned()),
    );
    if let (Some(bucket), Some(at)) = (value["b"].as_str(), value["a"].as_str()) {
        key.insert(SWEEP_BUCKET.to_owned(), AttributeValue::S(bucket.to_owned()));
        key.insert(SWEEP_AT.to_owned(), AttributeValue::N(at.to_owned()));
    }
    Ok(Some(key))
}

#[async_trait]
impl SweepIndex for DynamoSweepIndex {
    async fn due(&self, bucket: &str, now: i64, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let request = self
            .table
            .dynamodb
            .query()
            .table_name(&self.table.table)
            .index_name(SWEEP_INDEX)
            .key_condition_expression("#b = :b AND #a <= :now")
            .expression_attribute_names("#b", SWEEP_BUCKET)
            .expression_attribute_names("#a", SWEEP_AT)
            .expression_attribute_values(":b", AttributeValue::S(bucket.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .set_exclusive_start_key(start_key(after)?)
            .limit(limit as i32);
        let out = call("DynamoDB", request.send()).await?;
        self.items_read
            .fetch_add(out.scanned_count.max(0) as u64, Ordering::Relaxed);
        Ok(Page {
            subs: self.subs(out.items()),
            next: cursor(out.last_evaluated_key.as_ref()),
        })
    }

    async fn swept_until(&self) -> Result<Option<time::Date>, StoreError> {
        let item = self.table.get(self.progress_key()).await?;
        let day = item.as_ref().and_then(|i| i.get("swept_until")?.as_s().ok().cloned());
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Ok(day.and_then(|d| time::Date::parse(&d, format).ok()))
    }

    async fn set_swept_until(&self, day: time::Date) -> Result<(), StoreError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let text = day.format(format).map_err(|e| StoreError::Other(e.to_string()))?;
        let request = self
            .table
            .dynamodb
            .put_item()
            .table_name(&self.table.table)
            .item("pk", self.progress_key())
            .item("swept_until", AttributeValue::S(text));
        call("DynamoDB", request.send()).await.map(|_| ())
    }

    async fn unindexed(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let request = self
            .table
            .dynamodb
            .scan()
            .table_name(&self.table.table)
            .filter_expression("begins_with(pk, :grants) AND attribute_not_exists(#b)")
            .expression_attribute_names("#b", SWEEP_BUCKET)
            .expression_attribute_values(":grants", AttributeValue::S(GRANT_PREFIX.to_owned()))
            .set_exclusive_start_key(start_key(after)?)
            .limit(limit as i32);
        let out = call("DynamoDB", request.send()).await?;
        self.items_read
            .fetch_add(out.scanned_count.max(0) as u64, Ordering::Relaxed);
        Ok(Page {
            subs: self.subs(out.items()),
            next: cursor(out.last_evaluated_key.as_ref()),
        })
    }
}
