//! `POST /token` and `POST /revoke`, Google's OAuth endpoints.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use data_encoding::BASE64;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;

use crate::faults::{self, Endpoint, Gate};
use crate::oauth::OAuthError;
use crate::server::{Shared, lock};
use crate::state;

type Params = HashMap<String, String>;

/// Parses `application/x-www-form-urlencoded`; the first of repeated names wins.
pub(crate) fn parse_form(raw: &[u8]) -> Params {
    let mut params = Params::new();
    for (name, value) in form_urlencoded::parse(raw) {
        params.entry(name.into_owned()).or_insert_with(|| value.into_owned());
    }
    params
}

pub(crate) async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let params = parse_form(&body);
    let fault = {
        let mut state = lock(&shared);
        let hits = &mut state.hits;
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => hits.token_authorization_code += 1,
            Some("refresh_token") => {
                hits.token_refresh += 1;
                let token = params.get("refresh_token").map(String::as_str);
                state.count_refresh(token, params.get("scope").map(String::as_str));
            }
            _ => hits.token_other += 1,
        }
        state.faults.take(Endpoint::Token)
    };
    match faults::apply(&shared, Endpoint::Token, fault).await {
        Gate::Respond(response) => response,
        Gate::Proceed { drop_after } => {
            let response = match grant(&mut lock(&shared), &headers, &params) {
                Ok(body) => (no_store(), Json(body)).into_response(),
                Err(error) => error.into_response(),
            };
            faults::finish(response, drop_after)
        }
    }
}

fn grant(state: &mut state::State, headers: &HeaderMap, params: &Params) -> Result<serde_json::Value, OAuthError> {
    authenticate_client(state, headers, params)?;
    let param = |name: &'static str| {
        params
            .get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| missing(name))
    };
    let issued = match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = param("code")?;
            // Present but empty is how a phone app's server auth code is redeemed.
            let redirect_uri = params.get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
            state.exchange_code(code, redirect_uri)
        }
        Some("refresh_token") => {
            let scope = params.get("scope").map(String::as_str);
            state.refresh(param("refresh_token")?, scope)
        }
        Some(other) => {
            let description = format!("Invalid grant_type: {other}");
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                description,
            ));
        }
        None => return Err(missing("grant_type")),
    };
    issued.map(|issued| issued.to_json())
}

/// Client authentication by HTTP Basic or by `client_id` + `client_secret`
/// in the body (Google accepts both).
fn authenticate_client(state: &state::State, headers: &HeaderMap, params: &Params) -> Result<(), OAuthError> {
    let (client_id, client_secret) = match basic_credentials(headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (params.get("client_id").cloned(), params.get("client_secret").cloned()),
    };
    let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
        ));
    };
    let config = &state.config;
    if client_id != config.client_id || client_secret.as_deref() != Some(config.client_secret.as_str()) {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    Ok(())
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim().as_bytes()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| {
        let spaced = part.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

pub(crate) async fn revoke(State(shared): State<Shared>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.hits.revoke += 1;
        state.faults.take(Endpoint::Revoke)
    };
    let drop_after = match faults::apply(&shared, Endpoint::Revoke, fault).await {
        Gate::Respond(response) => return response,
        Gate::Proceed { drop_after } => drop_after,
    };
    // Google takes the token from the body or, as many clients send it, the query.
    let token = parse_form(&body)
        .remove("token")
        .or_else(|| parse_form(query.unwrap_or_default().as_bytes()).remove("token"))
        .filter(|token| !token.is_empty());
    let response = match token {
        None => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "Bad Request").into_response(),
        Some(token) if lock(&shared).revoke_token(&token) => (StatusCode::OK, Json(json!({}))).into_response(),
        Some(_) => {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked").into_response()
        }
    };
    faults::finish(response, drop_after)
}

fn missing(name: &str) -> OAuthError {
    let description = format!("Missing required parameter: {name}");
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        (self.status, no_store(), Json(body)).into_response()
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate"),
        (header::PRAGMA, "no-cache"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = BASE64.encode(b"my%3Aid:se+cr%2Bet");
        headers.insert(header::AUTHORIZATION, format!("basic {encoded}").parse().unwrap());
        assert_eq!(
            basic_credentials(&headers),
            Some(("my:id".to_owned(), "se cr+et".to_owned()))
        );
    }

    #[test]
    fn first_form_value_wins() {
        let params = parse_form(b"a=1&a=2&b=x%20y");
        assert_eq!(params["a"], "1");
        assert_eq!(params["b"], "x y");
    }
}
