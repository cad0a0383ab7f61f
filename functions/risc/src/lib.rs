//! `POST /risc`: Google Cross-Account Protection receiver (RFC 8935 push delivery).
//! A verified security event token about a user we hold makes us stop using their
//! tokens at once. The effect of each event type is in docs/api.md ("POST /risc").

use std::sync::Arc;

use ::http::{Method, StatusCode};
use lambda_http::Request;
use serde_json::json;
use shared::cases::SecurityEvents;
use shared::http::{self, Cors, Response, Route};
use shared::ports::SecurityEventTokens;
use shared::security::RiscRejection;
use shared::{ApiError, Boot, Needs};

/// Never touches a token: no KMS key, no client secret.
pub const NEEDS: Needs = Needs {
    kms: false,
    client_secret: false,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/risc")];

pub struct Risc {
    cors: Cors,
    verifier: Arc<dyn SecurityEventTokens>,
    events: SecurityEvents,
}

impl Risc {
    /// Google's RISC keys and the table (grants, the token indexes, `jti` records).
    pub fn new(boot: &Boot) -> Self {
        let table = boot.grants();
        Self {
            cors: boot.cors(),
            verifier: boot.security_events(),
            events: SecurityEvents::new(table.clone(), table, boot.ambient.clone()),
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        http::serve(&self.cors, &ROUTES, req, |_, req| self.receive(req)).await
    }

    async fn receive(&self, req: Request) -> Result<Response, ApiError> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > http::MAX_BODY_BYTES {
            return Ok(set_error("invalid_request", "security event token too large"));
        }
        let token = std::str::from_utf8(body).unwrap_or("");
        let event = match self.verifier.verify(token).await {
            Ok(event) => event,
            Err(RiscRejection::InvalidRequest(why)) => return Ok(set_error("invalid_request", &why)),
            Err(RiscRejection::AuthenticationFailed(why)) => return Ok(set_error("authentication_failed", &why)),
            // Google retries deliveries that fail with 5xx.
            Err(RiscRejection::KeysUnavailable(reason)) => return Err(ApiError::google_unavailable(reason)),
        };
        self.events.apply(&event).await?;
        Ok(http::empty(StatusCode::ACCEPTED))
    }
}

/// RFC 8935 §2.3 error body.
fn set_error(code: &str, description: &str) -> Response {
    http::json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "err": code, "description": description }),
    )
}
