//! The `/emulator/...` control API and the binary, as scripts use them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use common::*;
use google_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

#[tokio::test]
async fn codes_faults_and_hits_over_http() {
    let emu = start().await;
    let (status, minted) = control(
        &emu,
        "codes",
        json!({"sub": "u9", "offline": false, "hd": "corp.example"}),
    )
    .await;
    assert_eq!(status, 200);
    let fault = json!({"endpoint": "token", "kind": "status", "status": 503, "retry_after": 3});
    assert_eq!(control(&emu, "faults", fault).await.0, 200);
    let code = minted["code"].as_str().unwrap();
    assert_eq!(exchange(&emu, code).await.status(), 503);
    let (status, body) = json_of(exchange(&emu, code).await).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none(), "offline=false was honoured");
    assert_eq!(claims_of(body["id_token"].as_str().unwrap())["hd"], "corp.example");

    let (_, hits) = get_json(&format!("{}/emulator/hits", emu.base_url())).await;
    assert_eq!(hits["token_authorization_code"], 2);
    control(&emu, "hits/reset", json!({})).await;
    let (_, hits) = get_json(&format!("{}/emulator/hits", emu.base_url())).await;
    assert_eq!(hits["token_authorization_code"], 0);
}

#[tokio::test]
async fn bad_control_bodies_are_400() {
    let emu = start().await;
    assert_eq!(
        control(&emu, "codes", json!({"email": "no-sub@example.com"})).await.0,
        400
    );
    assert_eq!(
        control(&emu, "faults", json!({"endpoint": "token", "kind": "boom"}))
            .await
            .0,
        400
    );
    assert_eq!(
        control(&emu, "faults", json!({"endpoint": "nowhere", "kind": "drop_before"}))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn tokens_keys_events_and_reset_over_http() {
    let emu = start().await;
    let (_, body) = control(&emu, "id-token", json!({"sub": "u1", "claims": {"aud": "x"}})).await;
    assert_eq!(claims_of(body["id_token"].as_str().unwrap())["aud"], "x");
    let (_, body) = control(&emu, "risc", json!({"event_type": "account-purged", "sub": "u1"})).await;
    let claims = claims_of(body["set"].as_str().unwrap());
    assert_eq!(claims["jti"], body["jti"]);
    let (_, body) = control(
        &emu,
        "sign",
        json!({"header": {"alg": "none"}, "claims": {"a": 1}, "signer": "none_alg"}),
    )
    .await;
    assert!(body["jwt"].as_str().unwrap().ends_with('.'));

    let old_kid = emu.current_kid();
    let (_, rotated) = control(&emu, "keys/rotate", json!({})).await;
    assert_eq!(rotated["kid"], emu.current_kid());
    assert_ne!(rotated["kid"], old_kid);

    let signed_in = sign_in(
        &emu,
        google_emulator::CodeRequest::new("u1").scopes([google_emulator::SCOPE_CALENDAR]),
    )
    .await;
    let url = format!("{}/calendars/primary/events?sendUpdates=none", emu.calendar_api_url());
    let token = signed_in["access_token"].as_str().unwrap();
    client()
        .post(url)
        .bearer_auth(token)
        .json(&json!({"summary": "s"}))
        .send()
        .await
        .unwrap();
    let (_, events) = get_json(&format!("{}/emulator/events?sub=u1", emu.base_url())).await;
    assert_eq!(events[0]["event"]["summary"], "s");
    assert_eq!(events[0]["send_updates"], "none");

    let (_, secrets) = get_json(&format!("{}/emulator/issued-secrets", emu.base_url())).await;
    assert!(secrets.as_array().unwrap().contains(&json!(token)));
    assert_eq!(
        control(&emu, "users/u1/revoke", json!({})).await.1,
        json!({"revoked": true})
    );
    assert_eq!(control(&emu, "reset", json!({})).await.0, 200);
    assert!(emu.events("u1", "primary").is_empty());
    assert_eq!(emu.current_kid(), old_kid, "reset undoes rotations");
    assert_eq!(emu.issued_secrets(), vec![emu.client_secret()]);
}

#[tokio::test]
async fn binary_announces_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_google-emulator"))
        .args([
            "--port",
            "0",
            "--client-id",
            "bin-client",
            "--client-secret",
            "bin-secret",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("google-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let (status, config) = get_json(&format!("{base}/emulator/config")).await;
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(status, 200);
    assert_eq!(config["client_id"], "bin-client");
    assert_eq!(config["client_secret"], "bin-secret");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(!logs.contains("bin-secret"), "the secret never reaches the logs");
}

/// Test suites may share one emulator across tests, each with its own runtime.
static SHARED: LazyLock<Emulator> = LazyLock::new(|| Emulator::start_blocking(EmulatorConfig::default()));

#[tokio::test]
async fn shared_emulator_outlives_one_test_runtime() {
    assert_eq!(get_json(&SHARED.jwks_url()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_emulator_serves_another_test_runtime() {
    assert_eq!(get_json(&SHARED.jwks_url()).await.0, 200);
}

#[test]
fn shared_emulator_serves_a_plain_thread_with_its_own_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..2 {
        let status = runtime.block_on(async { get_json(&SHARED.jwks_url()).await.0 });
        assert_eq!(status, 200);
    }
}
