//! The Google ID-token verifier (docs/security.md): every forgery class refused with its own
//! reason; JWKS cached for its max-age and refetched, rate-limited, on unknown kids.

use std::time::Duration;

use integration_tests::Stack;
use integration_tests::google_emulator::Signer;
use serde_json::{Value, json};
use shared::google::{IdTokenVerifier, JwksCache, Rejection};
use shared::outbound;
use shared::types::IdToken;

fn verifier(stack: &Stack, interval: Duration) -> IdTokenVerifier {
    let http = outbound::http_client(Duration::from_secs(2));
    let jwks = JwksCache::with_refetch_interval(stack.google.jwks_url(), http, Duration::from_secs(2), interval);
    IdTokenVerifier::new(&stack.google.client_id(), jwks, None)
}

fn header(stack: &Stack) -> Value {
    json!({"alg": "RS256", "kid": stack.google.current_kid(), "typ": "JWT"})
}

async fn verify(v: &IdTokenVerifier, token: &str) -> Result<String, Rejection> {
    let token = IdToken::parse(token).ok_or(Rejection::Malformed)?;
    v.verify(&token).await.map(|id| id.profile.sub.to_string())
}

#[tokio::test]
async fn valid_tokens_verify_and_each_forgery_has_its_own_reason() {
    let stack = Stack::start().await;
    let g = &stack.google;
    let v = verifier(&stack, Duration::from_secs(10));
    assert_eq!(verify(&v, &g.id_token("alice")).await, Ok("alice".into()));

    let now = shared::google::id_token::unix_now();
    let claims = |patch: Value| {
        let mut c = g.id_token_claims("alice");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let signed = |patch: Value| g.sign_jwt(header(&stack), claims(patch), Signer::Current);
    let unknown_kid = json!({"alg": "RS256", "kid": "not-a-published-kid", "typ": "JWT"});
    let cases: Vec<(&str, String, Rejection)> = vec![
        (
            "alg none",
            g.sign_jwt(
                json!({"alg": "none", "kid": g.current_kid()}),
                claims(json!({})),
                Signer::NoneAlg,
            ),
            Rejection::UnsupportedAlgorithm("none".into()),
        ),
        (
            "HS256 keyed with the public key",
            g.sign_jwt(
                json!({"alg": "HS256", "kid": g.current_kid()}),
                claims(json!({})),
                Signer::Hs256WithPublicKey,
            ),
            Rejection::UnsupportedAlgorithm("HS256".into()),
        ),
        (
            "key not in the JWKS",
            g.sign_jwt(header(&stack), claims(json!({})), Signer::Foreign),
            Rejection::BadSignature,
        ),
        (
            "unknown kid",
            g.sign_jwt(unknown_kid, claims(json!({})), Signer::Foreign),
            Rejection::UnknownKid,
        ),
        (
            "aud = client secret",
            signed(json!({"aud": g.client_secret()})),
            Rejection::WrongAudience,
        ),
        (
            "aud = another client",
            signed(json!({"aud": "other.apps.googleusercontent.com"})),
            Rejection::WrongAudience,
        ),
        (
            "iss = another issuer",
            signed(json!({"iss": "https://evil.example.com"})),
            Rejection::WrongIssuer,
        ),
        (
            "expired",
            signed(json!({"iat": now - 7200, "exp": now - 3600})),
            Rejection::Expired,
        ),
        (
            "iat 10 min in the future",
            signed(json!({"iat": now + 600, "exp": now + 3600})),
            Rejection::IssuedInFuture,
        ),
        (
            "exp missing",
            signed(json!({"exp": null})),
            Rejection::MissingClaim("exp".into()),
        ),
        (
            "sub missing",
            signed(json!({"sub": null})),
            Rejection::MissingClaim("sub".into()),
        ),
        (
            "lifetime over 24 h",
            signed(json!({"iat": now, "exp": now + 25 * 3600})),
            Rejection::LifetimeTooLong,
        ),
        (
            "nbf 10 min in the future",
            signed(json!({"nbf": now + 600})),
            Rejection::NotYetValid,
        ),
        (
            "several audiences, azp another client",
            signed(
                json!({"aud": [g.client_id(), "other.apps.googleusercontent.com"], "azp": "other.apps.googleusercontent.com"}),
            ),
            Rejection::WrongAuthorizedParty,
        ),
        (
            "several audiences, no azp",
            signed(json!({"aud": [g.client_id(), "other.apps.googleusercontent.com"], "azp": null})),
            Rejection::WrongAuthorizedParty,
        ),
        (
            "exp far beyond i64 arithmetic",
            signed(json!({"iat": i64::MIN, "exp": i64::MAX})),
            Rejection::LifetimeTooLong,
        ),
        ("two segments", "aaa.bbb".into(), Rejection::Malformed),
        ("bad base64", "!!!.bbb.ccc".into(), Rejection::Malformed),
        ("bad JSON header", "bm90IGpzb24.e30.c2ln".into(), Rejection::Malformed),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verify(&v, &token).await, Err(expected), "{name}");
    }
    let several = json!({"aud": [g.client_id(), "other.apps.googleusercontent.com"], "azp": g.client_id()});
    assert!(verify(&v, &signed(several)).await.is_ok(), "azp = this client");
    assert!(verify(&v, &signed(json!({"nbf": now - 10}))).await.is_ok());
    // Both of Google's issuer spellings are accepted.
    assert!(verify(&v, &signed(json!({"iss": "accounts.google.com"}))).await.is_ok());
}

#[tokio::test]
async fn jwks_is_fetched_once_while_max_age_holds_and_rotation_needs_no_restart() {
    let stack = Stack::start().await;
    let v = verifier(&stack, Duration::from_millis(200));
    for _ in 0..20 {
        assert!(verify(&v, &stack.google.id_token("bob")).await.is_ok());
    }
    assert_eq!(stack.google.hits().jwks, 1, "one fetch for 20 verifications");

    stack.google.rotate_keys();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        verify(&v, &stack.google.id_token("bob")).await.is_ok(),
        "new key accepted after rotation"
    );
    assert_eq!(stack.google.hits().jwks, 2);
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited_and_retired_keys_stop_working() {
    let stack = Stack::start().await;
    let g = &stack.google;
    let forged = g.sign_jwt(
        json!({"alg": "RS256", "kid": "forged"}),
        g.id_token_claims("carol"),
        Signer::Foreign,
    );

    // Within the interval after a fetch, forged kids cause no fetch at all.
    let v = verifier(&stack, Duration::from_secs(10));
    let old = g.id_token("carol");
    assert!(verify(&v, &old).await.is_ok());
    for _ in 0..10 {
        assert_eq!(verify(&v, &forged).await, Err(Rejection::UnknownKid));
    }
    assert_eq!(g.hits().jwks, 1, "ten forged kids right after a fetch: no refetch");

    // Once the interval has passed, one refetch serves a burst of unknown kids.
    let v = verifier(&stack, Duration::from_millis(300));
    assert!(verify(&v, &old).await.is_ok());
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..10 {
        assert_eq!(verify(&v, &forged).await, Err(Rejection::UnknownKid));
    }
    assert_eq!(g.hits().jwks, 3, "second verifier: initial fetch + exactly one refetch");

    // Two rotations retire the key `old` was signed with; after a refetch it fails.
    g.rotate_keys();
    g.rotate_keys();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        verify(&v, &g.id_token("carol")).await.is_ok(),
        "new key fetched on demand"
    );
    assert_eq!(verify(&v, &old).await, Err(Rejection::UnknownKid));
}

#[tokio::test]
async fn hosted_domain_allow_list_uses_the_hd_claim() {
    let stack = Stack::start().await;
    let g = &stack.google;
    let http = outbound::http_client(Duration::from_secs(2));
    let v = IdTokenVerifier::new(
        &g.client_id(),
        JwksCache::new(g.jwks_url(), http, Duration::from_secs(2)),
        Some(vec!["example.org".into()]),
    );
    let with = |claims: Value| g.id_token_with_claims("dan", claims);
    assert!(
        verify(&v, &with(json!({"hd": "example.org", "email": "dan@example.org"})))
            .await
            .is_ok()
    );
    assert_eq!(
        verify(&v, &with(json!({"hd": "other.org"}))).await,
        Err(Rejection::DomainNotAllowed)
    );
    assert_eq!(
        verify(&v, &with(json!({"email": "dan@example.org"}))).await,
        Err(Rejection::DomainNotAllowed)
    );
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_never_holds_up_verification_once_keys_are_cached() {
    let google =
        integration_tests::google_emulator::Emulator::start(integration_tests::google_emulator::EmulatorConfig {
            jwks_max_age_secs: 1,
            ..Default::default()
        })
        .await;
    let http = outbound::http_client(Duration::from_secs(2));
    let jwks =
        JwksCache::with_refetch_interval(google.jwks_url(), http, Duration::from_secs(2), Duration::from_secs(1));
    let v = IdTokenVerifier::new(&google.client_id(), jwks, None);
    assert!(verify(&v, &google.id_token("erin")).await.is_ok());
    google.inject(
        integration_tests::google_emulator::Fault::new(
            integration_tests::google_emulator::Endpoint::Jwks,
            integration_tests::google_emulator::FaultKind::Latency(Duration::from_secs(30)),
        )
        .times(100),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let one = std::time::Instant::now();
        assert!(
            verify(&v, &google.id_token("erin")).await.is_ok(),
            "the cached key serves"
        );
        assert!(one.elapsed() < Duration::from_millis(900), "took {:?}", one.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let allowed = 2 + started.elapsed().as_secs();
    assert!(
        google.hits().jwks <= allowed,
        "at most one refetch per interval: {}",
        google.hits().jwks
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}
