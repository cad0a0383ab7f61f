//! The DynamoDB reads and EventBridge sends made without the SDK's pipeline
//! (`shared/src/aws/json_rpc.rs`) against a moto that checks every signature and
//! every IAM permission, as AWS does: long-term keys, temporary credentials with a
//! session token (what a Lambda function has), and a wrong secret that must fail.

use std::process::Command;
use std::time::Duration;

use integration_tests::aws::{python, spawn_moto};
use serde_json::{Value, json};
use shared::aws::json_rpc::JsonRpc;
use shared::aws::{DynamoGrants, EventBridgeSink};
use shared::ports::{EventSink as _, Outgoing, ReplayGuard as _, StoreError};

struct Signed {
    endpoint: String,
    setup: Value,
}

/// A moto of its own where every request after the first five is authenticated,
/// with the identities `infra/lib/moto_iam.py` creates in it.
fn signed_moto() -> Signed {
    let endpoint = spawn_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/lib/moto_iam.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&endpoint)
        .output()
        .expect("run moto_iam.py");
    assert!(
        out.status.success(),
        "moto_iam.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup = serde_json::from_slice(&out.stdout).expect("moto_iam.py prints JSON");
    Signed { endpoint, setup }
}

async fn sdk(endpoint: &str, key: &str, secret: &str, token: Option<&str>) -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new(key, secret, token.map(str::to_owned), None, "signing-test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

/// The replay guard reads `risc-jti#client#<jti>` with `GetItem`; the bus gets one event.
async fn read_and_send(
    aws: &aws_config::SdkConfig,
    setup: &Value,
) -> (Result<bool, StoreError>, Result<(), StoreError>) {
    let http = shared::outbound::http_client(Duration::from_secs(5));
    let grants = DynamoGrants::new(
        aws_sdk_dynamodb::Client::new(aws),
        JsonRpc::dynamodb(aws, &http).expect("endpoint"),
        setup["table"].as_str().unwrap().to_owned(),
        "client".into(),
    );
    let bus = EventBridgeSink::new(
        JsonRpc::eventbridge(aws, &http).expect("endpoint"),
        setup["bus"].as_str().unwrap().to_owned(),
    );
    let event = Outgoing {
        detail_type: "GrantConnected",
        detail: json!({"event_id": "e1", "sub": "u1"}),
    };
    (grants.seen("seen").await, bus.publish(&[event]).await)
}

#[tokio::test]
async fn reads_and_sends_are_signed_as_aws_checks_them() {
    let Signed { endpoint, setup } = signed_moto();
    let user = &setup["user"];
    let role = &setup["role"];
    let s = |v: &Value| v.as_str().unwrap().to_owned();

    let long_term = sdk(&endpoint, &s(&user["key"]), &s(&user["secret"]), None).await;
    let (read, sent) = read_and_send(&long_term, &setup).await;
    assert!(matches!(read, Ok(true)), "GetItem with an access key: {read:?}");
    assert!(sent.is_ok(), "PutEvents with an access key: {sent:?}");

    let temporary = sdk(
        &endpoint,
        &s(&role["key"]),
        &s(&role["secret"]),
        Some(&s(&role["token"])),
    )
    .await;
    let (read, sent) = read_and_send(&temporary, &setup).await;
    assert!(matches!(read, Ok(true)), "GetItem with a session token: {read:?}");
    assert!(sent.is_ok(), "PutEvents with a session token: {sent:?}");

    // moto really checks: the same key with another secret is refused, and a
    // refusal is not mistaken for "no such item" nor retried as a transient error.
    let forged = sdk(&endpoint, &s(&user["key"]), "not-the-secret", None).await;
    let (read, sent) = read_and_send(&forged, &setup).await;
    assert!(
        matches!(read, Err(StoreError::Other(_))),
        "GetItem with a wrong secret: {read:?}"
    );
    assert!(
        matches!(sent, Err(StoreError::Other(_))),
        "PutEvents with a wrong secret: {sent:?}"
    );
}
