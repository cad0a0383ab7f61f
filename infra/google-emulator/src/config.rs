//! Emulator settings and the description of a user's sign-in (a code to mint).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::random_token;

pub const DEFAULT_CLIENT_ID: &str = "emulator-client.apps.googleusercontent.com";
pub const SCOPE_OPENID: &str = "openid";
pub const SCOPE_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
pub const SCOPE_PROFILE: &str = "https://www.googleapis.com/auth/userinfo.profile";
pub const SCOPE_CALENDAR: &str = "https://www.googleapis.com/auth/calendar";
pub const SCOPE_CALENDAR_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";

/// How long a consent screen in *Testing* lets a refresh token live.
pub const TESTING_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The OAuth consent screen's publishing status (Google Cloud console).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishingStatus {
    /// Refresh tokens live until revoked (or a time-limited grant ends).
    #[default]
    InProduction,
    /// Every refresh token expires [`TESTING_REFRESH_TOKEN_LIFETIME`] after
    /// the consent that issued it.
    Testing,
}

impl std::str::FromStr for PublishingStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "in_production" | "in-production" | "production" => Ok(Self::InProduction),
            "testing" => Ok(Self::Testing),
            other => Err(format!(
                "unknown publishing status {other:?} (use in-production or testing)"
            )),
        }
    }
}

/// A phone app of the same Google Cloud project, and how its ID tokens name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppPlatform {
    /// Credential Manager / Google Identity on Android with the web client as
    /// server client: `aud` = the web client, `azp` = the Android client.
    Android,
    /// GoogleSignIn on iOS: `aud` = `azp` = the iOS client.
    Ios,
}

#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `max-age` of the JWKS `Cache-Control` header (Google sends about 5.5 h).
    pub jwks_max_age_secs: u64,
    pub access_token_ttl_secs: u64,
    /// Runtime threads serving requests; 1 (a current-thread runtime) suits
    /// tests, the binary uses more for benchmarks.
    pub worker_threads: usize,
    /// [`PublishingStatus::Testing`] gives every refresh token a 7-day life.
    pub publishing_status: PublishingStatus,
    /// In Testing, whether token responses carry `refresh_token_expires_in`
    /// (Google does not document it either way; default: they do).
    pub testing_announces_expiry: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            // Random per instance so a test can never pass by hard-coding it.
            client_secret: format!("GOCSPX-{}", random_token(21)),
            jwks_max_age_secs: 19800,
            access_token_ttl_secs: 3599,
            worker_threads: 1,
            publishing_status: PublishingStatus::InProduction,
            testing_announces_expiry: true,
        }
    }
}

/// What the user did on Google's consent screen; [`crate::Emulator::mint_code`]
/// turns it into a one-time authorization code.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeRequest {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub picture: String,
    pub hd: Option<String>,
    pub scopes: Vec<String>,
    /// `access_type=offline`: the exchange may return a refresh token.
    pub offline: bool,
    /// `prompt=consent`: a refresh token is returned even if one is live.
    pub consent: bool,
    pub include_granted_scopes: bool,
    pub redirect_uri: String,
    /// Merged into the ID token's claims; a `null` value removes the claim.
    pub id_token_claims: Option<Value>,
    /// Returned verbatim as `id_token` instead of a generated one (build it
    /// with [`crate::Emulator::sign_jwt`]); an empty string omits `id_token`.
    pub raw_id_token: Option<String>,
    /// Time-based access: the user granted access for this long only. The
    /// refresh token from this code dies after it (`invalid_grant`), and token
    /// responses carry `refresh_token_expires_in` (remaining whole seconds,
    /// rounded up). `None`: until the user removes access.
    pub refresh_token_lifetime: Option<Duration>,
    /// A phone app's server auth code: the app's own client ID, named as
    /// `azp` by the exchange's ID token (`aud` stays the web client). Such
    /// codes are redeemed with `redirect_uri=""` (see [`Self::app`]).
    pub app_client_id: Option<String>,
}

impl CodeRequest {
    pub fn new(sub: impl Into<String>) -> Self {
        let sub = sub.into();
        Self {
            email: format!("{sub}@example.com"),
            email_verified: true,
            name: format!("User {sub}"),
            picture: format!("https://lh3.googleusercontent.com/a/{sub}=s96-c"),
            hd: None,
            scopes: vec![SCOPE_OPENID.into(), SCOPE_EMAIL.into(), SCOPE_PROFILE.into()],
            offline: true,
            consent: false,
            include_granted_scopes: true,
            redirect_uri: "postmessage".into(),
            id_token_claims: None,
            raw_id_token: None,
            refresh_token_lifetime: None,
            app_client_id: None,
            sub,
        }
    }

    /// Time-based access: the refresh token lives `lifetime` from the exchange.
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_token_lifetime = Some(lifetime);
        self
    }

    /// A server auth code as an Android or iOS app gets it for the web client
    /// (`serverClientId`): redeemable with `redirect_uri=""`, and the ID token
    /// of its exchange has `aud` = the web client, `azp` = `app_client_id`.
    pub fn app(mut self, app_client_id: impl Into<String>) -> Self {
        self.app_client_id = Some(app_client_id.into());
        self.redirect_uri = String::new();
        self
    }

    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    pub fn consent(mut self, consent: bool) -> Self {
        self.consent = consent;
        self
    }

    pub fn include_granted_scopes(mut self, include: bool) -> Self {
        self.include_granted_scopes = include;
        self
    }

    pub fn hd(mut self, hd: impl Into<String>) -> Self {
        self.hd = Some(hd.into());
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn redirect_uri(mut self, redirect_uri: impl Into<String>) -> Self {
        self.redirect_uri = redirect_uri.into();
        self
    }

    pub fn claims(mut self, overrides: Value) -> Self {
        self.id_token_claims = Some(overrides);
        self
    }

    pub fn raw_id_token(mut self, token: impl Into<String>) -> Self {
        self.raw_id_token = Some(token.into());
        self
    }
}

/// JSON form of [`CodeRequest`] for the control API: everything but `sub`
/// is optional and defaults as in [`CodeRequest::new`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeRequestBody {
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    picture: Option<String>,
    hd: Option<String>,
    scopes: Option<Vec<String>>,
    offline: Option<bool>,
    consent: Option<bool>,
    include_granted_scopes: Option<bool>,
    redirect_uri: Option<String>,
    id_token_claims: Option<Value>,
    raw_id_token: Option<String>,
    /// Time-based access, in seconds.
    refresh_token_lifetime_secs: Option<u64>,
    /// A phone app's server auth code; `redirect_uri` then defaults to "".
    app_client_id: Option<String>,
}

impl From<CodeRequestBody> for CodeRequest {
    fn from(body: CodeRequestBody) -> Self {
        let defaults = CodeRequest::new(body.sub);
        Self {
            email: body.email.unwrap_or(defaults.email),
            email_verified: body.email_verified.unwrap_or(defaults.email_verified),
            name: body.name.unwrap_or(defaults.name),
            picture: body.picture.unwrap_or(defaults.picture),
            hd: body.hd,
            scopes: body.scopes.unwrap_or(defaults.scopes),
            offline: body.offline.unwrap_or(defaults.offline),
            consent: body.consent.unwrap_or(defaults.consent),
            include_granted_scopes: body.include_granted_scopes.unwrap_or(defaults.include_granted_scopes),
            redirect_uri: body.redirect_uri.unwrap_or_else(|| {
                if body.app_client_id.is_some() {
                    String::new()
                } else {
                    defaults.redirect_uri
                }
            }),
            id_token_claims: body.id_token_claims,
            raw_id_token: body.raw_id_token,
            refresh_token_lifetime: body.refresh_token_lifetime_secs.map(Duration::from_secs),
            app_client_id: body.app_client_id,
            sub: defaults.sub,
        }
    }
}
