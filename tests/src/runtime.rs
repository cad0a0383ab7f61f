//! A Lambda Runtime API of our own, and the function binaries run against it as
//! Lambda runs them: one process per execution environment, polling `/next` for
//! invocations and posting each answer (or function error) back. It is how the
//! tests see what only the runtime loop shows: an event that does not decode is a
//! function error, several invocations run at once in one environment, and a fleet
//! of environments shares one refresh.
//!
//! The binaries are the ones cargo builds for `cargo test --workspace` (every
//! function crate has an integration test, so its binary is built first).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// One invocation waiting for a poller.
struct Pending {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    answers: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    init_error: Arc<Mutex<Option<String>>>,
}

/// What the function made of one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(Value),
    /// A function error: Lambda retries the event (queues, streams) or reports it.
    Error(Value),
}

pub struct RuntimeApi {
    addr: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Shared,
    next_id: Mutex<u64>,
    _server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Shared {
            queue: Arc::new(tokio::sync::Mutex::new(receiver)),
            answers: Arc::default(),
            init_error: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("runtime API");
        });
        RuntimeApi {
            addr,
            sender,
            shared,
            next_id: Mutex::new(0),
            _server: server,
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API` for a function process.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Hands `payload` to whichever poller asks next and waits for its answer.
    pub async fn invoke(&self, payload: &Value, timeout: Duration) -> Answer {
        self.invoke_raw(payload.to_string().into_bytes(), timeout).await
    }

    pub async fn invoke_raw(&self, payload: Vec<u8>, timeout: Duration) -> Answer {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            format!("req-{}-{}", self.addr.port(), *next)
        };
        let (tell, answer) = oneshot::channel();
        self.shared.answers.lock().unwrap().insert(id.clone(), tell);
        let deadline_ms = now_ms() + 15_000;
        self.sender
            .send(Pending {
                id,
                payload,
                deadline_ms,
            })
            .expect("the runtime API runs");
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            _ => panic!(
                "no answer within {timeout:?} (init error: {:?})",
                self.shared.init_error.lock().unwrap()
            ),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn next(State(shared): State<Shared>) -> Response {
    let pending = shared.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", header(&pending.id));
    headers.insert("lambda-runtime-deadline-ms", header(&pending.deadline_ms.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:123456789012:function:test"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header("Root=1-00000000-000000000000000000000000"),
    );
    (headers, pending.payload).into_response()
}

fn settle(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    match shared.answers.lock().unwrap().remove(id) {
        Some(tell) => {
            let _ = tell.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&shared, &id, Answer::Response(json(&body)))
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&shared, &id, Answer::Error(json(&body)))
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// A function binary of this build, as cargo placed it.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds every function binary",
        path.display()
    );
    path
}

/// One execution environment: a function process polling `api`, its log lines kept.
pub struct Environment {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Environment {
    pub fn start(function: &str, api: &RuntimeApi, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary(function));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the function binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        Environment { child, logs }
    }

    /// Every line the process wrote so far (JSON log lines and EMF documents).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
