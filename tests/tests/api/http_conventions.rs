//! Routing, CORS and problem documents shared by every function (docs/api.md, "HTTP conventions").

use integration_tests::{Function, ORIGIN, Req, Stack};

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let stack = Stack::start().await;
    for (function, path) in [
        (Function::Exchange, "/"),
        (Function::Exchange, "/auth/upgrade"),
        (Function::Upgrade, "/auth/exchange"),
        (Function::Events, "/calendar"),
        (Function::Account, "/me/other"),
        (Function::Risc, "/risc/x"),
    ] {
        stack
            .send(function, Req::post(path).build())
            .await
            .assert_problem(404, "not_found");
    }
    for (function, method, path, allow) in [
        (Function::Exchange, "GET", "/auth/exchange", "POST, OPTIONS"),
        (Function::Upgrade, "PUT", "/auth/upgrade", "POST, OPTIONS"),
        (Function::Events, "GET", "/calendar/events", "POST, OPTIONS"),
        (Function::Account, "POST", "/me", "GET, OPTIONS"),
        (Function::Account, "GET", "/me/google", "DELETE, OPTIONS"),
        (Function::Risc, "GET", "/risc", "POST, OPTIONS"),
    ] {
        let reply = stack.send(function, Req::new(method, path).build()).await;
        reply.assert_problem(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some(allow));
    }
}

#[tokio::test]
async fn preflight_and_cors_headers_only_for_allowed_origins() {
    let stack = Stack::start().await;
    let preflight = |origin: &str| {
        Req::new("OPTIONS", "/auth/exchange")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-requested-with")
            .build()
    };
    let reply = stack.send(Function::Exchange, preflight(ORIGIN)).await;
    assert!((200..300).contains(&reply.status));
    assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(reply.header("access-control-allow-methods").unwrap().contains("POST"));
    let allowed_headers = reply.header("access-control-allow-headers").unwrap();
    for h in ["content-type", "x-requested-with", "authorization", "idempotency-key"] {
        assert!(allowed_headers.contains(h), "{h}");
    }
    assert!(reply.headers.get_all("vary").iter().any(|v| v == "Origin"));

    for other in [
        "https://app.example.com.evil.io",
        "http://app.example.com",
        "null",
        "https://evil.example.com",
    ] {
        let reply = stack.send(Function::Exchange, preflight(other)).await;
        assert_eq!(reply.header("access-control-allow-origin"), None, "{other}");
    }
    // Error answers carry CORS headers for allowed origins too.
    let reply = stack
        .send(
            Function::Events,
            Req::post("/calendar/events").header("origin", ORIGIN).build(),
        )
        .await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
}
