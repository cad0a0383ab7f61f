//! The entry points without an HTTP route, fed the way Lambda feeds them: `worker`
//! with SQS events (and through a real moto queue with a dead-letter queue),
//! `tokens` with direct-invocation payloads, `publisher` with the table's real
//! stream records read from moto and turned into the Lambda event shape. Events on
//! the bus are read back through a rule with an SQS target, as a consumer would.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::aws::EventBridgeSink;
use shared::cases::CalendarEvents;
use shared::ports::EventSink;

use crate::{Options, Stack};

/// An EventBridge bus of this test with a rule that copies every event of the
/// service to a queue.
pub struct Bus {
    pub name: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl Bus {
    /// Every event delivered so far (the `detail-type` and `detail` of each).
    pub async fn events(&self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                let envelope: Value = serde_json::from_str(message.body().unwrap_or("{}")).unwrap();
                assert_eq!(envelope["source"], "google-offline-access");
                events.push((
                    envelope["detail-type"].as_str().unwrap().to_owned(),
                    envelope["detail"].clone(),
                ));
                let handle = message.receipt_handle().unwrap();
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

impl Stack {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub async fn bus(&self) -> Bus {
        let suffix = crate::aws::unique();
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        let name = format!("bus-{suffix}");
        events.create_event_bus().name(&name).send().await.expect("bus");
        let sqs = self.sqs();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("bus-tail-{suffix}"))
            .send()
            .await
            .expect("queue")
            .queue_url
            .unwrap();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:bus-tail-{suffix}");
        events
            .put_rule()
            .name("all")
            .event_bus_name(&name)
            .event_pattern(json!({"source": ["google-offline-access"]}).to_string())
            .send()
            .await
            .expect("rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("tail")
            .arn(arn)
            .build()
            .unwrap();
        events
            .put_targets()
            .rule("all")
            .event_bus_name(&name)
            .targets(target)
            .send()
            .await
            .expect("target");
        Bus { name, queue_url, sqs }
    }

    fn offline_options(&self, bus: Option<&Bus>) -> Options {
        let mut options = Options::default();
        if let Some(bus) = bus {
            options = options.env("EVENT_BUS_NAME", bus.name.clone());
        }
        options
    }

    pub fn worker(&self, bus: Option<&Bus>) -> worker::Worker {
        worker::Worker::new(&self.another_boot(&self.offline_options(bus)))
    }

    /// A worker whose bus cannot be reached (EventBridge refuses connections).
    pub async fn worker_with_bus_down(&self) -> worker::Worker {
        let sink = self.unreachable_bus().await;
        let boot = self.another_boot(&Options::default());
        let events = CalendarEvents::new(Arc::new(boot.access_tokens()), boot.calendar());
        worker::Worker::with(events, Some(sink))
    }

    /// A publisher whose bus cannot be reached.
    pub async fn publisher_with_bus_down(&self) -> publisher::Publisher {
        publisher::Publisher::with(Some(self.unreachable_bus().await))
    }

    async fn unreachable_bus(&self) -> Arc<dyn EventSink> {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let down = crate::aws::sdk_config(&format!("http://{closed}")).await;
        let client = aws_sdk_eventbridge::Client::new(&down);
        Arc::new(EventBridgeSink::new(client, "bus".into()))
    }

    /// A jobs queue with its dead-letter queue, as the template defines them.
    pub async fn jobs_queue(&self, max_receive_count: u32) -> (String, String) {
        let suffix = crate::aws::unique();
        let sqs = self.sqs();
        let dlq = sqs
            .create_queue()
            .queue_name(format!("jobs-dlq-{suffix}"))
            .send()
            .await
            .unwrap();
        let dlq_url = dlq.queue_url.unwrap();
        let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:jobs-dlq-{suffix}");
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count});
        let queue = sqs
            .create_queue()
            .queue_name(format!("jobs-{suffix}"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                redrive.to_string(),
            )
            .send()
            .await
            .unwrap();
        (queue.queue_url.unwrap(), dlq_url)
    }

    pub fn tokens(&self) -> tokens::Tokens {
        tokens::Tokens::new(&self.another_boot(&Options::default()))
    }

    pub fn publisher(&self, bus: Option<&Bus>) -> publisher::Publisher {
        publisher::Publisher::new(&self.another_boot(&self.offline_options(bus)))
    }

    pub fn sweeper(&self, options: &Options) -> sweeper::SweeperFunction {
        sweeper::SweeperFunction::new(&self.another_boot(options))
    }

    /// The stream records written since the first `seen` ones (which moves past them),
    /// as one stream event for `publisher`.
    pub async fn stream_event_since(&self, seen: &mut usize) -> Value {
        let records = self.stream_records().await;
        let fresh = records[*seen..].to_vec();
        *seen = records.len();
        json!({ "Records": fresh })
    }

    /// Every record of the table's stream from its start, in the shape Lambda's
    /// event source mapping delivers (what moto leaves out added).
    pub async fn stream_records(&self) -> Vec<Value> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .expect("describe table");
        let stream_arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .expect("the table has a stream");
        let stream = streams_call(&self.endpoint, "DescribeStream", json!({"StreamArn": stream_arn})).await;
        let mut records = Vec::new();
        for shard in stream["StreamDescription"]["Shards"].as_array().unwrap() {
            let iterator = streams_call(
                &self.endpoint,
                "GetShardIterator",
                json!({"StreamArn": stream_arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
            let out = streams_call(
                &self.endpoint,
                "GetRecords",
                json!({"ShardIterator": iterator["ShardIterator"]}),
            )
            .await;
            for mut record in out["Records"].as_array().cloned().unwrap_or_default() {
                record["eventSourceARN"] = json!(stream_arn);
                let created = record["dynamodb"]["ApproximateCreationDateTime"]
                    .as_f64()
                    .unwrap_or_default();
                record["dynamodb"]["ApproximateCreationDateTime"] = json!(created as i64);
                records.push(record);
            }
        }
        records
    }
}

/// moto's DynamoDB Streams API over its JSON protocol.
async fn streams_call(endpoint: &str, action: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{action}"))
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .timeout(Duration::from_secs(10))
        .body(body.to_string())
        .send()
        .await
        .expect("streams call");
    response.json().await.expect("streams answer")
}

/// An SQS event with one message per body, ids `m0`, `m1`, ...
pub fn sqs_event(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

/// The ids a batch answer asks to retry.
pub fn retried(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// A function without an HTTP route, invoked as the Lambda runtime invokes it: the
/// payload decoded into the function's event type, the answer encoded as JSON.
#[allow(async_fn_in_trait)]
pub trait Invoke {
    async fn invoke(&self, payload: Value) -> Value;
}

fn lambda_event<E: DeserializeOwned>(payload: Value) -> LambdaEvent<E> {
    let event = serde_json::from_value(payload).expect("the event decodes as the function's event type");
    LambdaEvent::new(event, Context::default())
}

fn encoded(answer: impl Serialize) -> Value {
    serde_json::to_value(answer).expect("the answer encodes")
}

impl Invoke for worker::Worker {
    async fn invoke(&self, payload: Value) -> Value {
        encoded(self.handle(lambda_event(payload)).await)
    }
}

impl Invoke for publisher::Publisher {
    async fn invoke(&self, payload: Value) -> Value {
        encoded(self.handle(lambda_event(payload)).await)
    }
}

impl Invoke for tokens::Tokens {
    async fn invoke(&self, payload: Value) -> Value {
        encoded(self.handle(lambda_event(payload)).await)
    }
}

impl Invoke for sweeper::SweeperFunction {
    async fn invoke(&self, payload: Value) -> Value {
        encoded(self.handle(lambda_event(payload)).await)
    }
}
