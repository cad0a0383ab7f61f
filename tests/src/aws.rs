//! moto (DynamoDB + KMS) for the tests: reached over HTTP through the real AWS SDK.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, Projection, ProjectionType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde_yaml::Value as Yaml;

/// `MOTO_ENDPOINT` if the caller started moto (as `infra/test` does); otherwise a
/// moto server of our own, started once for this test binary and stopped with it.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => endpoint,
            _ => spawn_moto(&[]),
        })
        .clone()
}

/// A moto server of its own with `env` set, stopped when this test process ends.
pub fn spawn_moto(env: &[(&str, &str)]) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // moto with DynamoDB writes made atomic as in the real service (infra/lib/moto_atomic.py).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = format!("{} {}", python(), root.join("infra/lib/moto_atomic.py").display());
    // The watcher loop stops moto when this test process exits, however it exits.
    let script = format!(
        "{binary} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m",
        pid = std::process::id()
    );
    let mut watcher = Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .expect("start moto_server (run infra/test, or pip install 'moto[server]')");
    // Reaped in the background; it ends with this process.
    std::thread::spawn(move || watcher.wait());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// The project's Python (`.venv`, where moto and boto3 are), else `python3`.
pub fn python() -> String {
    let venv_python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv_python.exists() {
        venv_python.display().to_string()
    } else {
        "python3".to_owned()
    }
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let http = shared::outbound::http_client(Duration::from_secs(10));
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shared::aws::http::http_client(&http))
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// The `TokensTable` definition of `template.yaml`: tests create exactly the table
/// production gets, so code and template cannot drift apart.
pub fn table_definition() -> Yaml {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("read template.yaml");
    let template: Yaml = serde_yaml::from_str(&text).expect("template.yaml parses");
    template["Resources"]["TokensTable"]["Properties"].clone()
}

pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let props = table_definition();
    let name = format!("tokens-{}", unique());
    let mut create = client.create_table().table_name(&name);
    for attr in props["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
    {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr["AttributeName"].as_str().unwrap())
                .attribute_type(attr["AttributeType"].as_str().unwrap().into())
                .build()
                .unwrap(),
        );
    }
    for key in key_schema(&props["KeySchema"]) {
        create = create.key_schema(key);
    }
    for index in props["GlobalSecondaryIndexes"].as_sequence().into_iter().flatten() {
        let projection = index["Projection"]["ProjectionType"].as_str().unwrap();
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index["IndexName"].as_str().unwrap())
                .set_key_schema(Some(key_schema(&index["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection))
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    if let Some(view) = props["StreamSpecification"]["StreamViewType"].as_str() {
        create = create.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()
                .unwrap(),
        );
    }
    let billing = props["BillingMode"].as_str().expect("BillingMode");
    create
        .billing_mode(BillingMode::from(billing))
        .send()
        .await
        .expect("create table");
    let ttl = &props["TimeToLiveSpecification"];
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ttl["AttributeName"].as_str().unwrap())
                .enabled(ttl["Enabled"].as_bool().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    name
}

fn key_schema(schema: &Yaml) -> Vec<KeySchemaElement> {
    schema
        .as_sequence()
        .expect("KeySchema")
        .iter()
        .map(|key| {
            KeySchemaElement::builder()
                .attribute_name(key["AttributeName"].as_str().unwrap())
                .key_type(key["KeyType"].as_str().unwrap().into())
                .build()
                .unwrap()
        })
        .collect()
}

pub async fn create_key(client: &aws_sdk_kms::Client) -> String {
    let key = client
        .create_key()
        .description("tokens (tests)")
        .send()
        .await
        .expect("create key");
    let id = key.key_metadata.expect("metadata").key_id;
    let alias = format!("alias/tokens-{}", unique());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&id)
        .send()
        .await
        .expect("alias");
    alias
}

pub fn unique() -> String {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
