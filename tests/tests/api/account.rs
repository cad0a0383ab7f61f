//! `GET /me` and `DELETE /me/google` (docs/api.md).

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::google_emulator::{Endpoint, Fault, FaultKind};
use integration_tests::{Function, Req, Stack};
use lambda_http::Body;
use serde_json::json;

async fn disconnect(stack: &Stack, bearer: &str) -> integration_tests::Reply {
    stack
        .send(
            Function::Account,
            Req::new("DELETE", "/me/google").bearer(bearer).build(),
        )
        .await
}

#[tokio::test]
async fn me_reports_each_state() {
    let stack = Stack::start().await;
    let stranger = stack.google.id_token("acc0");
    let me = stack.me(&stranger).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        (me.body["status"].as_str(), me.body["offline_access"].as_bool()),
        (Some("not_connected"), Some(false))
    );
    assert_eq!(me.body["user"]["sub"], "acc0");

    let bearer = stack.connect_calendar("acc1").await;
    let me = stack.me(&bearer).await;
    assert_eq!(me.body["status"], "active");
    assert_eq!(me.body["offline_access"], true);
    assert!(
        me.body["granted_scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == integration_tests::CALENDAR_EVENTS)
    );
    assert!(
        time::OffsetDateTime::parse(
            me.body["updated_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );

    shared::cases::grants::mark_dead(
        stack.grants.as_ref(),
        &shared::system::SystemRandom,
        &integration_tests::sub("acc1"),
        shared::cases::grants::Holding::Any,
        "invalid_grant",
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(stack.me(&bearer).await.body["status"], "reauthorization_required");
}

#[tokio::test]
async fn disconnect_revokes_deletes_and_is_idempotent() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("acc2").await;
    let reply = disconnect(&stack, &bearer).await;
    assert_eq!(reply.status, 204);
    assert!(reply.raw.is_empty());
    assert_eq!(stack.google.hits().revoke, 1);
    assert_eq!(stack.google.user_refresh_tokens_live("acc2"), 0, "revoked at Google");
    assert!(stack.grant_item("acc2").await.is_none(), "ciphertext gone");
    assert_eq!(disconnect(&stack, &bearer).await.status, 204);
    assert_eq!(stack.me(&bearer).await.body["status"], "not_connected");
}

#[tokio::test]
async fn disconnect_keeps_the_grant_while_google_cannot_revoke() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("acc3").await;
    let before = stack.snapshot().await;
    for fault in [
        Fault::new(Endpoint::Revoke, FaultKind::DropBeforeWork).times(3),
        Fault::status(Endpoint::Revoke, 503).times(3),
        Fault::new(
            Endpoint::Revoke,
            FaultKind::Status {
                status: 429,
                body: None,
                retry_after: Some(11),
            },
        ),
    ] {
        stack.google.inject(fault);
        let reply = disconnect(&stack, &bearer).await;
        reply.assert_problem(503, "upstream_unavailable");
        let retry_after: u32 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!(retry_after >= 1);
        assert_eq!(
            stack.snapshot().await,
            before,
            "the grant stays until Google revoked it"
        );
        assert_eq!(stack.google.user_refresh_tokens_live("acc3"), 1);
    }
    // The client retries once Google is back.
    assert_eq!(disconnect(&stack, &bearer).await.status, 204);
    assert_eq!(stack.google.user_refresh_tokens_live("acc3"), 0);
    assert!(stack.grant_item("acc3").await.is_none());
}

#[tokio::test]
async fn disconnect_of_a_token_google_already_invalidated_deletes() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("acc4").await;
    assert!(stack.google.revoke_user("acc4"));
    let reply = disconnect(&stack, &bearer).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(stack.grant_item("acc4").await.is_none());
}

#[tokio::test]
async fn account_routes_need_a_bearer() {
    let stack = Stack::start().await;
    let reply = stack.send(Function::Account, Req::get("/me").build()).await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let req = http::Request::builder()
        .method("DELETE")
        .uri("/me/google")
        .header("authorization", "Bearer x.y.z")
        .body(Body::Empty)
        .unwrap();
    let reply = stack.send(Function::Account, req).await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}

/// Replaces the stored refresh-token ciphertext of `sub`'s grant.
async fn overwrite_ciphertext(stack: &Stack, sub: &str, ciphertext: AttributeValue) {
    let key = stack.grant_item(sub).await.expect("a grant")["pk"].clone();
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.table)
        .key("pk", key)
        .update_expression("SET refresh_token_ct = :ct")
        .expression_attribute_values(":ct", ciphertext)
        .send()
        .await
        .expect("UpdateItem");
}

#[tokio::test]
async fn disconnect_of_a_token_no_key_can_decrypt_deletes_the_grant_without_revoking() {
    let stack = Stack::start().await;
    let damaged = stack.sign_in("acc5").await;
    let copied = stack.sign_in("acc6").await;
    stack.sign_in("acc7").await;
    // A damaged ciphertext: its sealed bytes flipped. (moto answers a blob that does
    // not even name a key of its own with AccessDenied, which is no proof that no key
    // can decrypt it; real KMS calls both InvalidCiphertextException.)
    let stored = stack.grant_item("acc5").await.unwrap()["refresh_token_ct"].clone();
    let mut damaged_bytes = stored.as_b().unwrap().as_ref().to_vec();
    for byte in damaged_bytes.iter_mut().rev().take(16) {
        *byte ^= 0xff;
    }
    overwrite_ciphertext(&stack, "acc5", AttributeValue::B(Blob::new(damaged_bytes))).await;
    // Another user's ciphertext: its encryption context names that user.
    let someone_elses = stack.grant_item("acc7").await.unwrap()["refresh_token_ct"].clone();
    overwrite_ciphertext(&stack, "acc6", someone_elses).await;
    stack.google.reset_hits();

    for (sub, bearer) in [("acc5", &damaged), ("acc6", &copied)] {
        let reply = disconnect(&stack, bearer).await;
        assert_eq!(reply.status, 204, "{sub}: {}", reply.body);
        assert!(reply.raw.is_empty());
        assert!(stack.grant_item(sub).await.is_none(), "{sub}: grant deleted");
        assert_eq!(stack.me(bearer).await.body["status"], "not_connected");
        // We could not revoke it: the user removes the access in their Google account.
        assert_eq!(stack.google.user_refresh_tokens_live(sub), 1, "{sub}");
    }
    assert_eq!(stack.google.hits().revoke, 0, "the revoke endpoint is never called");
    assert!(
        stack.grant_item("acc7").await.is_some(),
        "the owner's grant is untouched"
    );
}

#[tokio::test]
async fn a_revoke_google_refuses_with_another_4xx_answers_502_and_keeps_the_grant() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("acc8").await;
    let before = stack.snapshot().await;
    for (status, error) in [(400, "invalid_request"), (403, "access_denied")] {
        stack.google.inject(Fault::new(
            Endpoint::Revoke,
            FaultKind::Status {
                status,
                body: Some(json!({"error": error, "error_description": "refused"})),
                retry_after: None,
            },
        ));
        disconnect(&stack, &bearer).await.assert_problem(502, "upstream_error");
        assert_eq!(stack.snapshot().await, before, "{status} {error}: the grant stays");
        assert_eq!(stack.google.user_refresh_tokens_live("acc8"), 1);
    }
    assert_eq!(stack.google.hits().revoke, 2, "each refusal is final: no retry");
    // Once Google accepts the revoke, the disconnect goes through.
    assert_eq!(disconnect(&stack, &bearer).await.status, 204);
    assert_eq!(stack.google.user_refresh_tokens_live("acc8"), 0);
}
