//! No plaintext token, authorization code or client secret ever reaches a table item
//! or a log line (docs/security.md), across every flow and failure path.

use integration_tests::google_emulator::{CodeRequest, Endpoint, Fault, FaultKind};
use integration_tests::{CALENDAR_EVENTS, Function, Req, Stack, logs};
use serde_json::json;

#[tokio::test]
async fn no_secret_reaches_the_table_or_the_logs() {
    let stack = Stack::start().await;
    let g = &stack.google;
    let event = json!({"start": {"date": "2031-05-01"}, "end": {"date": "2031-05-02"}});

    let bearer = stack.connect_calendar("hy1").await;
    assert_eq!(stack.create_event(&bearer, &event, Some("k")).await.status, 201);
    assert_eq!(stack.create_event(&bearer, &event, Some("k")).await.status, 200);
    // A cold container refreshes, and Google rotates the refresh token on a failure path.
    let cold = stack.another_container(&Default::default());
    let req = Req::post("/calendar/events").bearer(&bearer).json(&event);
    assert_eq!(
        integration_tests::send_to(&cold, Function::Events, req.build())
            .await
            .status,
        201
    );

    let used = g.mint_code(CodeRequest::new("hy2").offline(true).consent(true));
    assert_eq!(stack.exchange(&used).await.status, 200);
    assert_eq!(stack.exchange(&used).await.status, 400);
    g.inject(Fault::new(Endpoint::Token, FaultKind::DropAfterWork));
    let lost = g.mint_code(CodeRequest::new("hy3").offline(true).consent(true));
    assert_eq!(stack.exchange(&lost).await.status, 502);
    let mismatch = g.mint_code(CodeRequest::new("hy2").scopes(["openid", CALENDAR_EVENTS]));
    assert_eq!(stack.upgrade(&bearer, &mismatch, &[CALENDAR_EVENTS]).await.status, 403);

    g.revoke_user("hy1");
    assert_eq!(stack.create_event(&bearer, &event, None).await.status, 401);
    let bearer2 = stack.connect_calendar("hy4").await;
    let delete = Req::new("DELETE", "/me/google").bearer(&bearer2);
    assert_eq!(stack.send(Function::Account, delete.build()).await.status, 204);

    let secrets = g.issued_secrets();
    assert!(
        secrets.len() >= 8,
        "the flows above issued codes and tokens: {}",
        secrets.len()
    );
    assert!(secrets.contains(&g.client_secret()));
    let items = stack.items().await;
    assert!(
        items
            .iter()
            .any(|i| i["pk"].as_s().is_ok_and(|pk| pk.starts_with("access#"))),
        "the fleet's shared access tokens are among the items searched"
    );
    // Every attribute as text, binary ones (ciphertexts) included byte for byte.
    let table: String = items
        .iter()
        .flat_map(|item| item.values())
        .map(|value| match value {
            aws_sdk_dynamodb::types::AttributeValue::B(blob) => String::from_utf8_lossy(blob.as_ref()).into_owned(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let logs = logs::captured();
    assert!(logs.contains("request finished"), "logs were captured");
    for secret in &secrets {
        assert!(!table.contains(secret.as_str()), "a secret is stored in the clear");
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
}
