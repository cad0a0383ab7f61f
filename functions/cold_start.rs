//! Shared by every function crate (`[[test]] path = "../cold_start.rs"`): a missing
//! required variable ends the cold start before the first invocation, with one log
//! line naming the variable (docs/api.md, "Configuration").

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// This package's binary: cargo builds it next to the test's own directory.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(env!("CARGO_PKG_NAME"))
}

fn run_without(missing: &str) -> (bool, String) {
    run(Some(missing), &[])
}

/// Starts the binary with a complete local configuration, less `missing`, plus `extra`,
/// and waits for it to end its cold start: whether it succeeded, and its logs.
fn run(missing: Option<&str>, extra: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(binary());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in [
        ("GOOGLE_CLIENT_ID", "client.apps.googleusercontent.com"),
        ("GOOGLE_CLIENT_SECRET", "not-a-real-secret"),
        ("TOKENS_TABLE", "tokens"),
        ("TOKENS_KMS_KEY_ID", "alias/tokens"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if Some(name) != missing {
            cmd.env(name, value);
        }
    }
    cmd.envs(extra.iter().copied());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the function binary");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{} did not end its cold start (without {missing:?}, with {extra:?})",
                env!("CARGO_PKG_NAME")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("output");
    let logs = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (status.success(), logs)
}

#[test]
fn missing_required_configuration_ends_the_cold_start_naming_the_variable() {
    for missing in ["GOOGLE_CLIENT_ID", "TOKENS_TABLE"] {
        let (success, logs) = run_without(missing);
        assert!(!success, "exit status must report the failure");
        assert!(logs.contains(missing), "log names {missing}: {logs}");
        assert!(logs.lines().count() <= 3, "at most a few log lines: {logs}");
        assert!(!logs.contains("not-a-real-secret"), "the secret is never logged");
    }
}

#[test]
fn app_codes_without_the_apps_client_ids_end_the_cold_start_naming_the_variable() {
    // The ID token of an app's code names the app as `azp`: without the apps' client
    // IDs every phone sign-in would fail, so the deployment is refused at once.
    let (success, logs) = run(None, &[("ALLOW_APP_CODES", "true")]);
    assert!(!success, "exit status must report the failure: {logs}");
    assert!(logs.contains("GOOGLE_APP_CLIENT_IDS"), "log names the variable: {logs}");
    assert!(logs.lines().count() <= 3, "at most a few log lines: {logs}");
    assert!(!logs.contains("not-a-real-secret"), "the secret is never logged");
}

/// The functions that call Google's token endpoint and so read the client secret.
const READS_SECRET: &[&str] = &["exchange", "upgrade", "events", "worker", "tokens", "sweeper"];

#[test]
fn reading_the_client_secret_is_bounded_and_only_where_it_is_needed() {
    // An AWS endpoint that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut cmd = Command::new(binary());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in [
        ("GOOGLE_CLIENT_ID", "client.apps.googleusercontent.com"),
        (
            "GOOGLE_CLIENT_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
        ),
        ("TOKENS_TABLE", "tokens"),
        ("TOKENS_KMS_KEY_ID", "alias/tokens"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ] {
        cmd.env(name, value);
    }
    let started = Instant::now();
    let output = cmd.output().expect("run the function binary");
    let took = started.elapsed();
    let logs = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "no Lambda runtime here: {logs}");
    let reads = READS_SECRET.contains(&env!("CARGO_PKG_NAME"));
    assert_eq!(logs.contains("GOOGLE_CLIENT_SECRET_ARN"), reads, "{logs}");
    if reads {
        assert!(took < Duration::from_secs(9), "the read gives up in time: {took:?}");
    }
}
