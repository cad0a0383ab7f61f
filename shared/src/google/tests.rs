//! The ID-token and security-event-token rules, offline: tokens signed here with a
//! key the verifier's JWKS cache already holds, one case per rule, so that every
//! rule is checked by the fast layer of tests (the integration tests repeat the
//! important ones against the Google emulator's keys and JWKS endpoint).

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};

use super::id_token::{CLOCK_SKEW_SECS, IdTokenVerifier, unix_now};
use super::jwks::JwksCache;
use super::risc::SecurityEventVerifier;
use crate::identity::Rejection;
use crate::security::{RiscKind, RiscRejection, Subject, TokenLookup};
use crate::types::IdToken;

const WEB: &str = "web.apps.googleusercontent.com";
const IOS: &str = "ios.apps.googleusercontent.com";
const ANDROID: &str = "android.apps.googleusercontent.com";
const RISC_ISSUER: &str = "https://accounts.google.com/";

/// Google's key (kid `k1`, in the cache) and another one (published nowhere).
fn keys() -> &'static (RsaKeyPair, RsaKeyPair) {
    static KEYS: OnceLock<(RsaKeyPair, RsaKeyPair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let generate = || RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("an RSA key");
        (generate(), generate())
    })
}

fn decoding(pair: &RsaKeyPair) -> DecodingKey {
    let components: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
    DecodingKey::from_rsa_raw_components(&components.n, &components.e)
}

fn jwks() -> JwksCache {
    JwksCache::holding(vec![("k1", decoding(&keys().0))])
}

fn sign_with(pair: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    let encode = |v: &Value| BASE64URL_NOPAD.encode(v.to_string().as_bytes());
    let message = format!("{}.{}", encode(header), encode(claims));
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .expect("a signature");
    format!("{message}.{}", BASE64URL_NOPAD.encode(&signature))
}

fn header() -> Value {
    json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
}

/// Google's claims for `sub`, with `patch` applied (`null` removes a claim).
fn claims(patch: Value) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "iss": "https://accounts.google.com", "aud": WEB, "azp": WEB, "sub": "110169484474386276334",
        "email": "user@example.com", "email_verified": true, "iat": now, "exp": now + 3600,
    });
    for (name, value) in patch.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn verifier() -> IdTokenVerifier {
    IdTokenVerifier::new(WEB, jwks(), None).with_app_clients(&[IOS.to_owned(), ANDROID.to_owned()])
}

async fn verify(v: &IdTokenVerifier, token: &str) -> Result<String, Rejection> {
    let token = IdToken::parse(token).ok_or(Rejection::Malformed)?;
    v.verify(&token).await.map(|id| id.profile.sub.to_string())
}

async fn id_token_answer(header: Value, patch: Value) -> Result<String, Rejection> {
    verify(&verifier(), &sign_with(&keys().0, &header, &claims(patch))).await
}

#[tokio::test]
async fn a_valid_id_token_names_its_user_and_expiry() {
    let v = verifier();
    let c = claims(json!({"email_verified": "true", "hd": "example.com"}));
    let token = IdToken::parse(&sign_with(&keys().0, &header(), &c)).unwrap();
    let identity = v.verify(&token).await.unwrap();
    assert_eq!(identity.profile.sub.as_str(), "110169484474386276334");
    assert!(identity.profile.email_verified, "Google's string form of the flag");
    assert_eq!(identity.profile.hd.as_deref(), Some("example.com"));
    assert_eq!(identity.expires_at, c["exp"].as_i64().unwrap());
}

#[test]
fn a_token_of_another_algorithm_is_refused_by_the_decoder_too() {
    // The header check refuses it first; the decoder's own refusal names it the same.
    let token = sign_with(&keys().0, &json!({"alg": "HS256", "kid": "k1"}), &claims(json!({})));
    let validation = super::jwt::validation(&["exp"]);
    let answer = super::jwt::verified_claims::<Value>(&token, &decoding(&keys().0), &validation);
    assert!(matches!(answer, Err(Rejection::UnsupportedAlgorithm(_))), "{answer:?}");
}

#[tokio::test]
async fn an_id_token_issued_at_the_edge_of_the_clock_skew_is_accepted() {
    let edge = unix_now() + CLOCK_SKEW_SECS as i64;
    let answer = id_token_answer(header(), json!({"iat": edge, "exp": edge + 3600})).await;
    assert_eq!(answer.as_deref(), Ok("110169484474386276334"));
}

#[tokio::test]
async fn each_broken_id_token_rule_has_its_own_rejection() {
    let now = unix_now();
    let cases: Vec<(&str, Value, Value, Rejection)> = vec![
        (
            "wrong aud",
            header(),
            json!({"aud": "other.apps"}),
            Rejection::WrongAudience,
        ),
        (
            "wrong iss",
            header(),
            json!({"iss": "https://evil.example"}),
            Rejection::WrongIssuer,
        ),
        (
            "expired",
            header(),
            json!({"iat": now - 7200, "exp": now - 3600}),
            Rejection::Expired,
        ),
        (
            "iat in the future",
            header(),
            json!({"iat": now + 600, "exp": now + 3600}),
            Rejection::IssuedInFuture,
        ),
        (
            "nbf in the future",
            header(),
            json!({"nbf": now + 600}),
            Rejection::NotYetValid,
        ),
        (
            "no exp",
            header(),
            json!({"exp": null}),
            Rejection::MissingClaim("exp".into()),
        ),
        (
            "no sub",
            header(),
            json!({"sub": null}),
            Rejection::MissingClaim("sub".into()),
        ),
        (
            "empty sub",
            header(),
            json!({"sub": ""}),
            Rejection::MissingClaim("sub".into()),
        ),
        (
            "no iat",
            header(),
            json!({"iat": null}),
            Rejection::MissingClaim("iat".into()),
        ),
        (
            "no aud",
            header(),
            json!({"aud": null}),
            Rejection::MissingClaim("aud".into()),
        ),
        (
            "no iss",
            header(),
            json!({"iss": null}),
            Rejection::MissingClaim("iss".into()),
        ),
        (
            "over 24 h",
            header(),
            json!({"iat": now, "exp": now + 24 * 3600 + 1}),
            Rejection::LifetimeTooLong,
        ),
        (
            "exp beyond arithmetic",
            header(),
            json!({"iat": i64::MIN, "exp": i64::MAX}),
            Rejection::LifetimeTooLong,
        ),
        (
            "azp of another party",
            header(),
            json!({"azp": "other.apps"}),
            Rejection::WrongAuthorizedParty,
        ),
        (
            "several aud, no azp",
            header(),
            json!({"aud": [WEB, "other.apps"], "azp": null}),
            Rejection::WrongAuthorizedParty,
        ),
        (
            "several aud, foreign azp",
            header(),
            json!({"aud": [WEB, "other.apps"], "azp": "other.apps"}),
            Rejection::WrongAuthorizedParty,
        ),
        (
            "alg none",
            json!({"alg": "none", "kid": "k1"}),
            json!({}),
            Rejection::UnsupportedAlgorithm("none".into()),
        ),
        (
            "HS256",
            json!({"alg": "HS256", "kid": "k1"}),
            json!({}),
            Rejection::UnsupportedAlgorithm("HS256".into()),
        ),
        ("no kid", json!({"alg": "RS256"}), json!({}), Rejection::MissingKid),
        (
            "unknown kid",
            json!({"alg": "RS256", "kid": "k9"}),
            json!({}),
            Rejection::UnknownKid,
        ),
        (
            "crit",
            json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
            json!({}),
            Rejection::UnsupportedHeader("crit".into()),
        ),
        (
            "foreign typ",
            json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
            json!({}),
            Rejection::UnsupportedHeader("typ at+jwt".into()),
        ),
    ];
    for (name, header, patch, expected) in cases {
        assert_eq!(id_token_answer(header, patch).await, Err(expected), "{name}");
    }
    let forged = sign_with(&keys().1, &header(), &claims(json!({})));
    assert_eq!(
        verify(&verifier(), &forged).await,
        Err(Rejection::BadSignature),
        "another key"
    );
    let token = sign_with(&keys().0, &header(), &claims(json!({})));
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_claims = BASE64URL_NOPAD.encode(claims(json!({"sub": "mallory"})).to_string().as_bytes());
    let swapped = format!("{head}.{other_claims}.{signature}");
    assert_eq!(
        verify(&verifier(), &swapped).await,
        Err(Rejection::BadSignature),
        "claims swapped"
    );
}

#[tokio::test]
async fn the_skew_allows_five_minutes_and_both_issuer_spellings_pass() {
    let now = unix_now();
    for patch in [
        json!({"iat": now - 3600, "exp": now - 200}),
        json!({"iat": now + 200, "exp": now + 3600}),
        json!({"nbf": now + 200}),
        json!({"iat": now, "exp": now + 24 * 3600}),
        json!({"iss": "accounts.google.com"}),
        json!({"aud": [WEB, "other.apps"], "azp": WEB}),
    ] {
        assert!(id_token_answer(header(), patch.clone()).await.is_ok(), "{patch}");
    }
    assert!(
        id_token_answer(json!({"alg": "RS256", "kid": "k1"}), json!({}))
            .await
            .is_ok(),
        "typ is optional"
    );
}

#[tokio::test]
async fn the_apps_of_the_project_sign_in_too() {
    // iOS: the app's own audience; Android: the web client's, with the app as azp.
    assert!(id_token_answer(header(), json!({"aud": IOS, "azp": IOS})).await.is_ok());
    assert!(
        id_token_answer(header(), json!({"aud": WEB, "azp": ANDROID}))
            .await
            .is_ok()
    );
    assert!(
        id_token_answer(header(), json!({"aud": IOS, "azp": null}))
            .await
            .is_ok()
    );
    let web_only = IdTokenVerifier::new(WEB, jwks(), None);
    let ios = sign_with(&keys().0, &header(), &claims(json!({"aud": IOS, "azp": IOS})));
    assert_eq!(verify(&web_only, &ios).await, Err(Rejection::WrongAudience));
    let android = sign_with(&keys().0, &header(), &claims(json!({"azp": ANDROID})));
    assert_eq!(verify(&web_only, &android).await, Err(Rejection::WrongAuthorizedParty));
}

#[tokio::test]
async fn the_hosted_domain_list_reads_the_hd_claim() {
    let v = IdTokenVerifier::new(WEB, jwks(), Some(vec!["Example.org".into()]));
    let with = |patch: Value| sign_with(&keys().0, &header(), &claims(patch));
    assert!(verify(&v, &with(json!({"hd": "example.org"}))).await.is_ok());
    assert_eq!(
        verify(&v, &with(json!({"hd": "other.org"}))).await,
        Err(Rejection::DomainNotAllowed)
    );
    assert_eq!(
        verify(&v, &with(json!({"email": "dan@example.org"}))).await,
        Err(Rejection::DomainNotAllowed)
    );
}

fn risc_claims(patch: Value) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "iss": RISC_ISSUER, "aud": WEB, "iat": now, "jti": "j-1",
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-purged":
            {"subject": {"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "42"}}},
    });
    for (name, value) in patch.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

async fn security_event(header: Value, patch: Value) -> Result<crate::security::SecurityEvent, RiscRejection> {
    let v = SecurityEventVerifier::new(WEB, RISC_ISSUER, jwks());
    v.verify(&sign_with(&keys().0, &header, &risc_claims(patch))).await
}

fn invalid(result: Result<crate::security::SecurityEvent, RiscRejection>) -> bool {
    matches!(result, Err(RiscRejection::InvalidRequest(_)))
}

fn unauthenticated(result: Result<crate::security::SecurityEvent, RiscRejection>) -> bool {
    matches!(result, Err(RiscRejection::AuthenticationFailed(_)))
}

#[tokio::test]
async fn a_security_event_token_is_google_s_for_us_and_recent() {
    let set = json!({"alg": "RS256", "kid": "k1", "typ": "secevent+jwt"});
    let event = security_event(set.clone(), json!({})).await.unwrap();
    assert_eq!(event.jti, "j-1");
    assert_eq!(
        event.events,
        vec![(
            RiscKind::AccountPurged,
            Subject::Sub(crate::types::Sub::parse("42").unwrap())
        )]
    );
    assert!(security_event(header(), json!({})).await.is_ok(), "Google's typ JWT");
    let now = unix_now();
    assert!(unauthenticated(
        security_event(set.clone(), json!({"iss": "https://accounts.google.com"})).await
    ));
    assert!(unauthenticated(
        security_event(set.clone(), json!({"aud": "other.apps"})).await
    ));
    assert!(unauthenticated(security_event(set.clone(), json!({"iss": null})).await));
    assert!(
        unauthenticated(security_event(set.clone(), json!({"exp": now - 3600})).await),
        "an exp, if any, holds"
    );
    assert!(unauthenticated(
        security_event(json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}), json!({})).await
    ));
    assert!(unauthenticated(
        security_event(json!({"alg": "RS256", "kid": "k9"}), json!({})).await
    ));
    assert!(invalid(
        security_event(set.clone(), json!({"iat": now - 8 * 24 * 3600})).await
    ));
    assert!(invalid(security_event(set.clone(), json!({"iat": now + 600})).await));
    assert!(invalid(security_event(set.clone(), json!({"iat": null})).await));
    assert!(invalid(security_event(set.clone(), json!({"jti": ""})).await));
    assert!(invalid(security_event(set.clone(), json!({"events": {}})).await));
    assert!(
        security_event(set.clone(), json!({"iat": now - 6 * 24 * 3600}))
            .await
            .is_ok()
    );
    // The edge holds: exactly the clock skew ahead (a second passing meanwhile only
    // moves it further inside).
    let skew = CLOCK_SKEW_SECS as i64;
    assert!(security_event(set, json!({"iat": now + skew})).await.is_ok());
    let v = SecurityEventVerifier::new(WEB, RISC_ISSUER, jwks());
    assert!(invalid(v.verify("not a token").await));
}

#[tokio::test]
async fn a_security_event_issued_exactly_seven_days_ago_is_still_accepted() {
    const NOW: i64 = 1_900_000_000;
    let set = json!({"alg": "RS256", "kid": "k1", "typ": "secevent+jwt"});
    let v = SecurityEventVerifier::new(WEB, RISC_ISSUER, jwks()).with_clock(|| NOW);
    let at = |iat: i64| sign_with(&keys().0, &set, &risc_claims(json!({"iat": iat})));
    assert!(v.verify(&at(NOW - 7 * 24 * 3600)).await.is_ok());
    assert!(invalid(v.verify(&at(NOW - 7 * 24 * 3600 - 1)).await));
    let skew = CLOCK_SKEW_SECS as i64;
    assert!(v.verify(&at(NOW + skew)).await.is_ok());
    assert!(invalid(v.verify(&at(NOW + skew + 1)).await));
}

#[tokio::test]
async fn a_token_subject_is_looked_up_by_its_identifier_only() {
    let oauth = "https://schemas.openid.net/secevent/oauth/event-type/token-revoked";
    let with = |subject: Value| json!({"events": {oauth: {"subject": subject}}});
    let subject = |event: crate::security::SecurityEvent| event.events[0].1.clone();
    let prefix = security_event(
        header(),
        with(json!({"subject_type": "oauth_token", "token_type": "refresh_token",
                    "token_identifier_alg": "prefix", "token": "1//0abcdefghijkl"})),
    )
    .await
    .unwrap();
    assert_eq!(
        subject(prefix),
        Subject::Token(TokenLookup::PrefixHash(crate::grant::TokenIds::hash_prefix(
            "1//0abcdefghijkl"
        )))
    );
    let hashed = crate::grant::TokenIds::of(&crate::secret::Secret::new("1//0abcdefghijklmnop")).hash;
    let by_hash = security_event(
        header(),
        with(json!({"subject_type": "oauth_token", "token_type": "refresh_token",
                    "token_identifier_alg": "hash_base64_sha512_sha512", "token": hashed})),
    )
    .await
    .unwrap();
    assert_eq!(subject(by_hash), Subject::Token(TokenLookup::Hash(hashed)));
    for odd in [
        json!({"subject_type": "oauth_token", "token_type": "access_token", "token_identifier_alg": "prefix", "token": "x"}),
        json!({"subject_type": "oauth_token", "token_identifier_alg": "sha1", "token": "x"}),
        json!({"subject_type": "email", "email": "user@example.com"}),
    ] {
        let event = security_event(header(), with(odd.clone())).await.unwrap();
        assert_eq!(subject(event), Subject::None, "{odd}");
    }
}
