//! Published keys (`/oauth2/v3/certs`, `/risc/certs`) and RISC security
//! event tokens shaped like Google's Cross-Account Protection pushes.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::{Value, json};

use crate::faults::{self, Endpoint, Gate};
use crate::keys::{self, Signer, SigningKey};
use crate::server::{Shared, lock};
use crate::state::{State as EmulatorState, now};

pub const RISC_ISSUER: &str = "https://accounts.google.com/";
const RISC_EVENTS: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const OAUTH_EVENTS: &str = "https://schemas.openid.net/secevent/oauth/event-type/";

pub(crate) async fn jwks(State(shared): State<Shared>) -> Response {
    serve_keys(&shared, Endpoint::Jwks).await
}

pub(crate) async fn risc_jwks(State(shared): State<Shared>) -> Response {
    serve_keys(&shared, Endpoint::RiscJwks).await
}

async fn serve_keys(shared: &Shared, endpoint: Endpoint) -> Response {
    let fault = {
        let mut state = lock(shared);
        match endpoint {
            Endpoint::RiscJwks => state.hits.risc_jwks += 1,
            _ => state.hits.jwks += 1,
        }
        state.faults.take(endpoint)
    };
    let drop_after = match faults::apply(shared, endpoint, fault).await {
        Gate::Respond(response) => return response,
        Gate::Proceed { drop_after } => drop_after,
    };
    let (published, max_age) = {
        let state = lock(shared);
        let published = match endpoint {
            Endpoint::RiscJwks => vec![keys::risc_key()],
            _ => state.published_keys(),
        };
        (published, state.config.jwks_max_age_secs)
    };
    let cache_control = format!("public, max-age={max_age}, must-revalidate, no-transform");
    let response = (
        [(header::CACHE_CONTROL, cache_control)],
        Json(jwks_document(&published)),
    )
        .into_response();
    faults::finish(response, drop_after)
}

pub(crate) fn jwks_document(published: &[std::sync::Arc<SigningKey>]) -> Value {
    json!({"keys": published.iter().map(|key| key.jwk()).collect::<Vec<_>>()})
}

/// Maps a short event name (`tokens-revoked`) to its URI; full URIs pass through.
pub(crate) fn event_type_uri(event_type: &str) -> String {
    match event_type {
        "tokens-revoked" | "token-revoked" => format!("{OAUTH_EVENTS}{event_type}"),
        short if !short.contains(':') => format!("{RISC_EVENTS}{short}"),
        uri => uri.to_owned(),
    }
}

/// Claims of a security event token for `sub`. For `verification` the
/// second argument is the `state` string instead of a subject.
pub(crate) fn risc_claims(client_id: &str, event_type: &str, sub: &str) -> Value {
    let uri = event_type_uri(event_type);
    let event = if uri.ends_with("/verification") {
        json!({"state": sub})
    } else {
        let mut event = json!({"subject": {"subject_type": "iss-sub", "iss": RISC_ISSUER, "sub": sub}});
        if uri.ends_with("/account-disabled") {
            event["reason"] = json!("hijacking");
        }
        event
    };
    json!({
        "iss": RISC_ISSUER,
        "aud": client_id,
        "iat": now(),
        "jti": keys::random_token(16),
        "events": {uri: event},
    })
}

impl EmulatorState {
    /// A signed security event token and its `jti`.
    pub(crate) fn risc_set(&self, event_type: &str, sub: &str) -> (String, String) {
        let claims = risc_claims(&self.config.client_id, event_type, sub);
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        let key = keys::risc_key();
        let token = keys::encode_jwt(&keys::rs256_header(key.kid()), &claims, &key, Signer::Risc);
        (token, jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_map_to_uris() {
        assert_eq!(
            event_type_uri("tokens-revoked"),
            "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked"
        );
        assert_eq!(
            event_type_uri("account-disabled"),
            "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
        );
        let uri = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
        assert_eq!(event_type_uri(uri), uri);
    }

    #[test]
    fn verification_carries_state_not_subject() {
        let claims = risc_claims("cid", "verification", "abc");
        let event = &claims["events"]["https://schemas.openid.net/secevent/risc/event-type/verification"];
        assert_eq!(event, &json!({"state": "abc"}));
        assert!(claims.get("exp").is_none());
    }
}
