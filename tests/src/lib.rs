//! Test harness: moto (DynamoDB + KMS) started once per test binary, a Google emulator
//! per test, and a fresh table (created from `template.yaml`) and KMS key per test, so
//! tests run in parallel without seeing each other. Each function is built the way it
//! is deployed (its own adapters and caches, from the same configuration) and its
//! handler called directly as a plain async function over `http::Request`.

pub mod aws;
pub mod logs;
pub mod offline;
pub mod runtime;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use google_emulator::{CodeRequest, Emulator, EmulatorConfig};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::aws::{DynamoGrants, KmsSealer};
use shared::google::OAuthClient;
use shared::{Boot, Config};

pub use google_emulator;

pub const ORIGIN: &str = "https://app.example.com";

/// A Google `sub` for a test user.
pub fn sub(raw: &str) -> shared::types::Sub {
    shared::types::Sub::parse(raw).expect("a valid sub")
}
pub const CALENDAR_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";

/// The function a request is sent to.
#[derive(Debug, Clone, Copy)]
pub enum Function {
    Exchange,
    Upgrade,
    Events,
    Account,
    Risc,
}

/// One container of each API function, as deployed.
pub struct Functions {
    pub exchange: exchange::Exchange,
    pub upgrade: upgrade::Upgrade,
    pub events: events::Events,
    pub account: account::Account,
    pub risc: risc::Risc,
}

impl Functions {
    pub fn new(boot: &Boot) -> Self {
        Self {
            exchange: exchange::Exchange::new(boot),
            upgrade: upgrade::Upgrade::new(boot),
            events: events::Events::new(boot),
            account: account::Account::new(boot),
            risc: risc::Risc::new(boot),
        }
    }
}

pub struct Stack {
    pub google: Emulator,
    pub functions: Functions,
    /// The adapters themselves, for tests that look behind the API.
    pub grants: Arc<DynamoGrants>,
    pub sealer: Arc<KmsSealer>,
    pub oauth: Arc<OAuthClient>,
    pub boot: Boot,
    /// The moto server every AWS client of the test talks to.
    pub endpoint: String,
    pub table: String,
    pub key_id: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub sdk: aws_config::SdkConfig,
}

/// Per-test knobs on top of the defaults.
#[derive(Default, Clone)]
pub struct Options {
    pub env: Vec<(&'static str, String)>,
}

impl Options {
    pub fn env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.push((name, value.into()));
        self
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        logs::capture();
        let endpoint = aws::moto_endpoint();
        let sdk = aws::sdk_config(&endpoint).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let kms = aws_sdk_kms::Client::new(&sdk);
        let table = aws::create_table(&dynamodb).await;
        let key_id = aws::create_key(&kms).await;
        let google = Emulator::start(EmulatorConfig::default()).await;
        let boot = boot(&google, &table, &key_id, &sdk, &options);
        Stack {
            google,
            functions: Functions::new(&boot),
            grants: boot.grants(),
            sealer: boot.sealer(),
            oauth: boot.google_oauth(),
            boot,
            endpoint,
            table,
            key_id,
            dynamodb,
            kms,
            sdk,
        }
    }

    /// The configuration every function would read from its environment.
    pub fn env(google: &Emulator, table: &str, key_id: &str) -> Vec<(&'static str, String)> {
        vec![
            ("GOOGLE_CLIENT_ID", google.client_id()),
            ("GOOGLE_CLIENT_SECRET", google.client_secret()),
            ("GOOGLE_TOKEN_URL", google.token_url()),
            ("GOOGLE_REVOKE_URL", google.revoke_url()),
            ("GOOGLE_JWKS_URL", google.jwks_url()),
            ("GOOGLE_CALENDAR_API_URL", google.calendar_api_url()),
            ("GOOGLE_RISC_JWKS_URL", google.risc_jwks_url()),
            ("GOOGLE_RISC_ISSUER", google.risc_issuer()),
            ("TOKENS_TABLE", table.to_owned()),
            ("TOKENS_KMS_KEY_ID", key_id.to_owned()),
            ("ALLOWED_ORIGINS", ORIGIN.to_owned()),
            ("HTTP_TIMEOUT_MS", "2000".to_owned()),
        ]
    }

    /// Another container of the same deployment (cold caches, same table and key).
    pub fn another_container(&self, options: &Options) -> Functions {
        Functions::new(&self.another_boot(options))
    }

    /// The cold start of another container, for the functions without a route.
    pub fn another_boot(&self, options: &Options) -> Boot {
        boot(&self.google, &self.table, &self.key_id, &self.sdk, options)
    }

    /// A container whose DynamoDB and KMS endpoint refuses every connection.
    pub async fn container_without_aws(&self) -> Functions {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let sdk = aws::sdk_config(&format!("http://{closed}")).await;
        Functions::new(&boot(
            &self.google,
            &self.table,
            &self.key_id,
            &sdk,
            &Options::default(),
        ))
    }

    pub async fn send(&self, function: Function, req: http::Request<Body>) -> Reply {
        send_to(&self.functions, function, req).await
    }

    // ---- the flows most tests start from ----

    pub fn code(&self, sub: &str) -> CodeRequest {
        CodeRequest::new(sub)
    }

    pub async fn exchange(&self, code: &str) -> Reply {
        self.send(
            Function::Exchange,
            Req::post("/auth/exchange")
                .csrf()
                .json(&json!({ "code": code }))
                .build(),
        )
        .await
    }

    /// First sign-in with offline access; returns the ID token to use as bearer.
    pub async fn sign_in(&self, sub: &str) -> String {
        let code = self.google.mint_code(CodeRequest::new(sub).offline(true).consent(true));
        let reply = self.exchange(&code).await;
        assert_eq!(reply.status, 200, "sign-in failed: {}", reply.body);
        reply.body["id_token"].as_str().expect("id_token").to_owned()
    }

    pub async fn upgrade(&self, bearer: &str, code: &str, scopes: &[&str]) -> Reply {
        let req = Req::post("/auth/upgrade")
            .csrf()
            .bearer(bearer)
            .json(&json!({ "code": code, "scopes": scopes }));
        self.send(Function::Upgrade, req.build()).await
    }

    /// Signs in and grants Calendar through incremental authorization.
    pub async fn connect_calendar(&self, sub: &str) -> String {
        let bearer = self.sign_in(sub).await;
        let code = self
            .google
            .mint_code(CodeRequest::new(sub).scopes(["openid", CALENDAR_EVENTS]));
        let reply = self.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await;
        assert_eq!(reply.status, 200, "upgrade failed: {}", reply.body);
        bearer
    }

    pub async fn create_event(&self, bearer: &str, event: &Value, key: Option<&str>) -> Reply {
        let mut req = Req::post("/calendar/events").bearer(bearer).json(event);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        self.send(Function::Events, req.build()).await
    }

    /// An event call for a user whose grant is dead: 401 `reauthorization_required`,
    /// and neither the token endpoint nor Calendar is called.
    pub async fn assert_events_refused_without_google(&self, bearer: &str) {
        self.google.reset_hits();
        let event = json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}});
        self.create_event(bearer, &event, None)
            .await
            .assert_problem(401, "reauthorization_required");
        let hits = self.google.hits();
        assert_eq!(
            (hits.token_refresh, hits.calendar_insert),
            (0, 0),
            "no Google call while reauthorization is required"
        );
    }

    pub async fn me(&self, bearer: &str) -> Reply {
        self.send(Function::Account, Req::get("/me").bearer(bearer).build())
            .await
    }

    /// Every item of the table, rendered deterministically: equal strings mean the
    /// table is byte-for-byte unchanged.
    pub async fn snapshot(&self) -> String {
        let items = self.items().await;
        let sorted: Vec<BTreeMap<String, String>> = items
            .iter()
            .map(|item| item.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect())
            .collect();
        format!("{sorted:?}")
    }

    pub async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let out = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        let mut items = out.items.unwrap_or_default();
        items.sort_by_key(|item| format!("{:?}", item.get("pk")));
        items
    }

    pub async fn grant_item(&self, sub: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.items()
            .await
            .into_iter()
            .find(|i| i.get("sub").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(sub))
    }
}

/// The cold start every function of a container makes, from the test environment.
fn boot(google: &Emulator, table: &str, key_id: &str, sdk: &aws_config::SdkConfig, options: &Options) -> Boot {
    let mut env = Stack::env(google, table, key_id);
    env.extend(options.env.iter().cloned());
    let config = Config::from_lookup(true, |name| {
        env.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .expect("test configuration");
    Boot::new(config, sdk)
}

pub async fn send_to(functions: &Functions, function: Function, req: http::Request<Body>) -> Reply {
    let response = match function {
        Function::Exchange => functions.exchange.handle(req).await,
        Function::Upgrade => functions.upgrade.handle(req).await,
        Function::Events => functions.events.handle(req).await,
        Function::Account => functions.account.handle(req).await,
        Function::Risc => functions.risc.handle(req).await,
    };
    Reply::from(response)
}

/// A response with its body parsed (as JSON when it is JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts a problem document with this status and code and every required member.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        for member in ["type", "title", "detail", "request_id"] {
            assert!(
                self.body[member].as_str().is_some_and(|s| !s.is_empty()),
                "{member} missing: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
    }
}

impl From<http::Response<Body>> for Reply {
    fn from(response: http::Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let raw = body.to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            raw,
        }
    }
}

/// Builds requests the way API Gateway / cargo lambda deliver them.
pub struct Req {
    builder: http::request::Builder,
    body: Body,
}

impl Req {
    pub fn new(method: &str, uri: &str) -> Self {
        Self {
            builder: http::Request::builder().method(method).uri(uri),
            body: Body::Empty,
        }
    }
    pub fn post(uri: &str) -> Self {
        Self::new("POST", uri)
    }
    pub fn get(uri: &str) -> Self {
        Self::new("GET", uri)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }
    pub fn csrf(self) -> Self {
        self.header("x-requested-with", "XMLHttpRequest")
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json").text(&body.to_string())
    }
    pub fn text(mut self, body: &str) -> Self {
        self.body = Body::Text(body.to_owned());
        self
    }
    pub fn build(self) -> http::Request<Body> {
        self.builder.body(self.body).expect("valid request")
    }
}
