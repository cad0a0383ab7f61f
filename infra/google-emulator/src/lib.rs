//! The project's own Google emulator: OAuth token/revoke endpoints, the ID
//! token and RISC JWKS, Calendar `events.insert`/`events.get`, RISC security
//! event tokens, and a Google Identity Services stand-in (the `/gsi/client`
//! code-model script and its consent popup, see `gis.rs`), with fault
//! injection and hit counters.
//!
//! Tests start one per test in-process ([`Emulator::start`]); scripts run the
//! `google-emulator` binary and drive it through `/emulator/...` (every
//! control route, with its body and answer, is listed in `control.rs`).
//! Dropping an [`Emulator`] stops its server.
//!
//! Google behaviours beyond the basic code flow:
//! - **time-based access**: a code with [`CodeRequest::refresh_token_lifetime`]
//!   (or the consent popup's "how long" choice) gives a refresh token that
//!   dies after that long; the exchange and every refresh with it carry
//!   `refresh_token_expires_in`, and after it the token endpoint answers
//!   `invalid_grant`. [`PublishingStatus::Testing`] gives every refresh token
//!   7 days. [`Emulator::expire_refresh_tokens`] ends such access at once;
//! - **scope on refresh** (RFC 6749 §6): `scope` on a refresh asks for a
//!   subset of the grant (`email`/`profile` ≡ their `userinfo.*` scopes),
//!   else 400 `invalid_scope`; the access token carries exactly that subset
//!   and Calendar checks the token's own scopes;
//! - **apps on phones**: [`CodeRequest::app`] mints a server auth code
//!   redeemed with `redirect_uri=""` whose ID token has `aud` = the web client
//!   and `azp` = the app; [`Emulator::app_id_token`] mints the ID tokens
//!   Android and iOS apps get at sign-in;
//! - **revocation** of any refresh or access token ends the user's whole
//!   grant: every refresh and access token of it;
//! - **concurrency**: [`Fault::barrier`] answers requests only once N of them
//!   are in flight at once; [`Emulator::refreshes_of`] and
//!   [`Emulator::refresh_hits`] count refreshes per user (and per scope).

mod calendar;
mod certs;
mod config;
mod control;
mod faults;
mod gis;
mod keys;
mod oauth;
mod server;
mod state;
mod token;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::net::ToSocketAddrs;

use serde_json::Value;

pub use certs::RISC_ISSUER;
pub use config::{
    AppPlatform, CodeRequest, DEFAULT_CLIENT_ID, EmulatorConfig, PublishingStatus, SCOPE_CALENDAR,
    SCOPE_CALENDAR_EVENTS, SCOPE_EMAIL, SCOPE_OPENID, SCOPE_PROFILE, TESTING_REFRESH_TOKEN_LIFETIME,
};
pub use faults::{DEFAULT_BARRIER_TIMEOUT, Endpoint, Fault, FaultKind};
pub use gis::{MAX_ACCESS_DURATION_SECS, TEST_ACCOUNTS, TestAccount};
pub use keys::Signer;
pub use oauth::ID_TOKEN_ISSUER;
pub use state::{BarrierStats, Hits, RefreshHits, StoredEvent};

use server::{Shared, lock};

/// A running emulator. Cheap to query; every method takes `&self`.
///
/// The server runs on its own thread and Tokio runtime, so it keeps serving
/// whichever runtime (or none) the caller uses, and can live in a `static`
/// shared by many tests. Dropping it stops the server and frees the port.
pub struct Emulator {
    shared: Shared,
    addr: SocketAddr,
    _server: server::ServerHandle,
}

impl Emulator {
    /// Starts an emulator on `127.0.0.1` with an ephemeral port.
    pub async fn start(config: EmulatorConfig) -> Self {
        Self::start_blocking(config)
    }

    /// [`Self::start`] for synchronous callers (e.g. a `LazyLock`).
    pub fn start_blocking(config: EmulatorConfig) -> Self {
        Self::bind(config, "127.0.0.1:0").expect("bind the Google emulator to 127.0.0.1:0")
    }

    /// Starts an emulator on the given address (the binary uses this).
    pub fn bind(config: EmulatorConfig, addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let worker_threads = config.worker_threads;
        let state = state::State::new(config);
        // Generate the signing key now rather than inside the first request.
        let _ = state.current_key();
        let shared: Shared = Arc::new(Mutex::new(state));
        let server = server::launch(listener, server::router(shared.clone()), worker_threads)?;
        Ok(Self {
            shared,
            addr,
            _server: server,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/oauth2/v3/certs", self.base_url())
    }

    /// Calendar API base; `/calendars/{id}/events` is appended by clients.
    pub fn calendar_api_url(&self) -> String {
        format!("{}/calendar/v3", self.base_url())
    }

    pub fn risc_jwks_url(&self) -> String {
        format!("{}/risc/certs", self.base_url())
    }

    pub fn risc_issuer(&self) -> String {
        RISC_ISSUER.to_owned()
    }

    pub fn client_id(&self) -> String {
        lock(&self.shared).config.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        lock(&self.shared).config.client_secret.clone()
    }

    /// A one-time authorization code for this sign-in.
    pub fn mint_code(&self, request: CodeRequest) -> String {
        lock(&self.shared).mint_code(request)
    }

    /// A valid ID token for the user (profile of their latest sign-in, else
    /// the [`CodeRequest::new`] defaults).
    pub fn id_token(&self, sub: &str) -> String {
        lock(&self.shared).id_token(sub, None)
    }

    /// Like [`Self::id_token`], with claims merged in (`null` removes one).
    pub fn id_token_with_claims(&self, sub: &str, overrides: Value) -> String {
        lock(&self.shared).id_token(sub, Some(&overrides))
    }

    /// An ID token as a phone app gets it at sign-in: for
    /// [`AppPlatform::Android`] `aud` = the web client and `azp` =
    /// `app_client_id`; for [`AppPlatform::Ios`] `aud` = `azp` = `app_client_id`.
    /// (The same as [`Self::id_token_with_claims`] with those two claims.)
    pub fn app_id_token(&self, sub: &str, platform: AppPlatform, app_client_id: &str) -> String {
        lock(&self.shared).app_id_token(sub, platform, app_client_id, None)
    }

    /// The claims [`Self::id_token`] would sign, to tweak and sign yourself.
    pub fn id_token_claims(&self, sub: &str) -> Value {
        let state = lock(&self.shared);
        state.id_token_claims_for(&state.profile(sub))
    }

    /// Signs `header.claims` with `signer`; the header is used verbatim.
    pub fn sign_jwt(&self, header: Value, claims: Value, signer: Signer) -> String {
        lock(&self.shared).sign_jwt(&header, &claims, signer)
    }

    pub fn current_kid(&self) -> String {
        lock(&self.shared).current_key().kid().to_owned()
    }

    /// PEM text of the current signing key's public key (the HMAC key that
    /// [`Signer::Hs256WithPublicKey`] uses).
    pub fn current_public_key_pem(&self) -> String {
        lock(&self.shared).current_key().public_pem().to_owned()
    }

    pub fn risc_kid(&self) -> String {
        keys::risc_key().kid().to_owned()
    }

    /// A signed security event token and its `jti`. `event_type` is a short
    /// name (`tokens-revoked`, `account-disabled`, ...) or a full URI.
    pub fn risc_set(&self, event_type: &str, sub: &str) -> (String, String) {
        lock(&self.shared).risc_set(event_type, sub)
    }

    /// The claims of a security event token, to tweak and sign with
    /// [`Signer::Risc`].
    pub fn risc_claims(&self, event_type: &str, sub: &str) -> Value {
        certs::risc_claims(&self.client_id(), event_type, sub)
    }

    /// Switches to a new signing key; the JWKS then publishes new + previous.
    pub fn rotate_keys(&self) {
        lock(&self.shared).rotate_keys();
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared).faults.push(fault);
    }

    pub fn hits(&self) -> Hits {
        lock(&self.shared).hits.clone()
    }

    /// Zeroes [`Self::hits`], the refresh counters and the barrier counters.
    pub fn reset_hits(&self) {
        lock(&self.shared).reset_hits();
    }

    /// Refresh requests per user (and per requested scope) since the last
    /// [`Self::reset_hits`].
    pub fn refresh_hits(&self) -> RefreshHits {
        lock(&self.shared).refresh_hits.clone()
    }

    /// Refresh requests for the user's refresh tokens since the last
    /// [`Self::reset_hits`], faulted ones included.
    pub fn refreshes_of(&self, sub: &str) -> u64 {
        let state = lock(&self.shared);
        state.refresh_hits.by_user.get(sub).copied().unwrap_or(0)
    }

    /// Refresh requests that named this refresh token since the last
    /// [`Self::reset_hits`] (0 for a token the emulator never issued).
    pub fn refreshes_with(&self, refresh_token: &str) -> u64 {
        let state = lock(&self.shared);
        state.refresh_hits_by_token.get(refresh_token).copied().unwrap_or(0)
    }

    /// Groups released and barriers broken by [`FaultKind::Barrier`] faults.
    pub fn barrier_stats(&self) -> BarrierStats {
        lock(&self.shared).barriers
    }

    /// Events stored in the user's calendar, in insertion order.
    pub fn events(&self, sub: &str, calendar_id: &str) -> Vec<Value> {
        self.stored_events(sub, calendar_id)
            .into_iter()
            .map(|stored| stored.event)
            .collect()
    }

    /// Events with the `sendUpdates` each insert came with.
    pub fn stored_events(&self, sub: &str, calendar_id: &str) -> Vec<StoredEvent> {
        let key = (sub.to_owned(), calendar_id.to_owned());
        lock(&self.shared).events.get(&key).cloned().unwrap_or_default()
    }

    /// Revokes the user's whole grant (as if they removed the app's access).
    /// Returns whether there was a live token to revoke.
    pub fn revoke_user(&self, sub: &str) -> bool {
        lock(&self.shared).revoke_user(sub)
    }

    /// Makes every access token of the user expired now.
    pub fn expire_access_tokens(&self, sub: &str) {
        lock(&self.shared).expire_access_tokens(sub);
    }

    /// Ends the user's live refresh tokens now, as when time-based access
    /// runs out: refreshes answer `invalid_grant` and the grant's scopes are
    /// no longer granted. Returns how many refresh tokens ended.
    pub fn expire_refresh_tokens(&self, sub: &str) -> usize {
        lock(&self.shared).expire_refresh_tokens(sub)
    }

    /// Every access token, refresh token and code ever issued, and the
    /// client secret: strings that must never show up in logs or tables.
    pub fn issued_secrets(&self) -> Vec<String> {
        lock(&self.shared).issued.clone()
    }

    pub fn user_refresh_tokens_live(&self, sub: &str) -> usize {
        lock(&self.shared).live_refresh_tokens(sub)
    }

    /// Scopes Google currently considers granted by the user (sorted).
    pub fn granted_scopes(&self, sub: &str) -> Vec<String> {
        let mut state = lock(&self.shared);
        state.end_expired_refresh_tokens();
        let grant = state.users.get(sub);
        grant
            .map(|grant| grant.scopes.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets users, tokens, codes, events, faults, hits and key rotations.
    pub fn reset(&self) {
        lock(&self.shared).reset();
    }
}
