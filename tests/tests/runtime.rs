//! The function binaries under a Lambda Runtime API of our own (tests/src/runtime.rs),
//! as Lambda runs them: an event that does not decode is a function error (Lambda
//! retries it, never mistaking it for a batch with nothing to retry); several
//! invocations run at once in one environment when Lambda asks for it; and a fleet of
//! environments serving one user refreshes once.

use std::time::Duration;

use futures::future::join_all;
use integration_tests::google_emulator::{Endpoint, Fault};
use integration_tests::runtime::{Answer, Environment, RuntimeApi};
use integration_tests::{CALENDAR_EVENTS, Stack};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The environment a function reads, for a stack of this test.
fn env(stack: &Stack) -> Vec<(&'static str, String)> {
    let mut env = Stack::env(&stack.google, &stack.table, &stack.key_id);
    env.extend([
        ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]);
    env
}

/// Just enough configuration for a function to start (nothing is called).
fn offline_env() -> Vec<(&'static str, String)> {
    [
        ("GOOGLE_CLIENT_ID", "client.apps.googleusercontent.com"),
        ("GOOGLE_CLIENT_SECRET", "not-a-real-secret"),
        ("TOKENS_TABLE", "tokens"),
        ("TOKENS_KMS_KEY_ID", "alias/tokens"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

fn response(answer: Answer) -> Value {
    match answer {
        Answer::Response(value) => value,
        Answer::Error(error) => panic!("a function error: {error}"),
    }
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_a_function_error_never_an_empty_failure_list() {
    for (function, good) in [
        ("worker", json!({"Records": []})),
        ("publisher", json!({"Records": []})),
    ] {
        let api = RuntimeApi::start().await;
        let _environment = Environment::start(function, &api, &offline_env());
        let answer = response(api.invoke(&good, WAIT).await);
        assert_eq!(answer, json!({"batchItemFailures": []}), "{function}");
        for bad in [
            json!({"Records": "not a list"}),
            json!({"Records": [{"messageId": 7}]}),
            json!([1, 2, 3]),
        ] {
            let answer = api.invoke(&bad, WAIT).await;
            assert!(
                matches!(answer, Answer::Error(_)),
                "{function} answered {answer:?} to {bad}"
            );
        }
        let answer = api.invoke_raw(b"not json at all".to_vec(), WAIT).await;
        assert!(matches!(answer, Answer::Error(_)), "{function}: {answer:?}");
    }
}

#[tokio::test]
async fn eight_invocations_run_at_once_in_one_environment_each_with_its_own_user() {
    let stack = Stack::start().await;
    let users: Vec<String> = (0..8).map(|n| format!("conc-{n}")).collect();
    for user in &users {
        stack.connect_calendar(user).await;
    }
    // The token endpoint answers only once eight refreshes are in flight: the test
    // passes only if the eight invocations really run at the same time.
    stack
        .google
        .inject(Fault::barrier(Endpoint::Token, 8, Duration::from_secs(20)));
    let api = RuntimeApi::start().await;
    let mut env = env(&stack);
    env.push(("AWS_LAMBDA_MAX_CONCURRENCY", "8".to_owned()));
    let environment = Environment::start("tokens", &api, &env);
    let answers = join_all(users.iter().map(|user| {
        let request = json!({"sub": user, "scopes": [CALENDAR_EVENTS]});
        let api = &api;
        async move { response(api.invoke(&request, WAIT).await) }
    }))
    .await;
    for answer in &answers {
        assert!(answer["access_token"].is_string(), "{answer}");
    }
    assert_eq!(stack.google.barrier_stats().released, 1, "the eight refreshes met");

    // Each invocation's log line names its own user, and each wrote its own metrics.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<Value> = environment
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let finished: Vec<&Value> = lines.iter().filter(|l| l["message"] == "invocation finished").collect();
    assert_eq!(finished.len(), 8, "{lines:?}");
    let mut named: Vec<String> = finished
        .iter()
        .map(|l| l["span"]["sub"].as_str().unwrap_or_default().to_owned())
        .collect();
    named.sort();
    assert_eq!(named, users);
    let ids: std::collections::BTreeSet<&str> = finished
        .iter()
        .map(|l| l["span"]["request_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids.len(), 8, "one request id per invocation");
    let documents = lines.iter().filter(|l| l.get("TokenVended").is_some()).count();
    let values: Vec<&Value> = lines.iter().filter_map(|l| l.get("TokenVended")).collect();
    assert_eq!(documents, 8, "one metrics document per invocation: {values:?}");
    assert!(values.iter().all(|v| *v == &json!(1.0)), "{values:?}");
}

#[tokio::test]
async fn a_fleet_of_environments_refreshes_once_per_user() {
    let stack = Stack::start().await;
    for (k, user) in [(8, "fleet-8"), (32, "fleet-32")] {
        stack.connect_calendar(user).await;
        let apis: Vec<RuntimeApi> = join_all((0..k).map(|_| RuntimeApi::start())).await;
        let env = env(&stack);
        let _fleet: Vec<Environment> = apis.iter().map(|api| Environment::start("tokens", api, &env)).collect();
        let request = json!({"sub": user, "scopes": [CALENDAR_EVENTS]});
        let answers = join_all(apis.iter().map(|api| api.invoke(&request, WAIT))).await;
        let tokens: Vec<String> = answers
            .into_iter()
            .map(|a| response(a)["access_token"].as_str().expect("a token").to_owned())
            .collect();
        assert_eq!(stack.google.refreshes_of(user), 1, "K = {k}: one refresh for the fleet");
        assert!(tokens.iter().all(|t| t == &tokens[0]), "K = {k}: one token for all");
    }
}
