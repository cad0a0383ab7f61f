//! Configuration (docs/api.md, "Configuration"), read once per cold start.

use std::time::Duration;

use crate::grant::{DAY, SweepPolicy};
use crate::secret::Secret;

pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const DEFAULT_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const DEFAULT_CALENDAR_API_URL: &str = "https://www.googleapis.com/calendar/v3";
pub const DEFAULT_RISC_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const DEFAULT_RISC_ISSUER: &str = "https://accounts.google.com/";
/// Every outbound call must finish within 10 s (docs/security.md, "Outbound calls"); a little less leaves room
/// for the response inside a 15 s Lambda timeout.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(8);

/// What a function requires of its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Encrypts or decrypts tokens: `TOKENS_KMS_KEY_ID` is required.
    pub kms: bool,
    /// Calls the token endpoint: the client secret is required.
    pub client_secret: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    /// Present when `GOOGLE_CLIENT_SECRET` is set; otherwise `App` reads the secret
    /// named by `client_secret_arn` once per cold start.
    pub client_secret: Option<Secret>,
    pub client_secret_arn: Option<String>,
    pub token_url: String,
    pub revoke_url: String,
    pub jwks_url: String,
    pub calendar_api_url: String,
    pub risc_jwks_url: String,
    pub risc_issuer: String,
    pub tokens_table: String,
    pub kms_key_id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_redirect_uris: Vec<String>,
    /// `None` accepts any account; `Some` only Workspace accounts of these domains.
    pub allowed_hosted_domains: Option<Vec<String>>,
    pub http_timeout: Duration,
    /// The team's EventBridge bus for lifecycle and job events (unset: only logged).
    pub event_bus_name: Option<String>,
    /// `ALLOW_APP_CODES`: phone apps' server auth codes (`redirect_uri: ""`).
    pub allow_app_codes: bool,
    /// `GOOGLE_APP_CLIENT_IDS`: the apps' own client IDs (ID-token audiences).
    pub app_client_ids: Vec<String>,
    /// `GRANT_EXPIRY_NOTICE_DAYS` and `KEEP_ALIVE_AFTER_DAYS`.
    pub sweep: SweepPolicy,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, &'static str),
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        Self::from_lookup(needs.kms, |name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any lookup, so tests need not touch the
    /// process environment.
    pub fn from_lookup(needs_kms: bool, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let or_default = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };

        let client_id = required("GOOGLE_CLIENT_ID")?;
        let tokens_table = required("TOKENS_TABLE")?;
        let kms_key_id = if needs_kms {
            Some(required("TOKENS_KMS_KEY_ID")?)
        } else {
            get("TOKENS_KMS_KEY_ID")
        };
        let http_timeout = match get("HTTP_TIMEOUT_MS") {
            None => DEFAULT_HTTP_TIMEOUT,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) if (1..=10_000).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::Invalid("HTTP_TIMEOUT_MS", "expected 1..=10000"));
                }
            },
        };
        let hosted = list("ALLOWED_HOSTED_DOMAINS");
        let days = |name: &'static str, default: i64| -> Result<i64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(raw) => match raw.parse::<i64>() {
                    Ok(days) if (0..=365).contains(&days) => Ok(days),
                    _ => Err(ConfigError::Invalid(name, "expected a whole number of days, 0..=365")),
                },
            }
        };
        let sweep = SweepPolicy {
            notice_secs: days("GRANT_EXPIRY_NOTICE_DAYS", 7)? * DAY,
            keep_alive_secs: days("KEEP_ALIVE_AFTER_DAYS", 150)? * DAY,
        };
        let allow_app_codes = match get("ALLOW_APP_CODES").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => return Err(ConfigError::Invalid("ALLOW_APP_CODES", "expected true or false")),
        };
        let app_client_ids = list("GOOGLE_APP_CLIENT_IDS");
        if allow_app_codes && app_client_ids.is_empty() {
            // The ID token from an app's code names the app as `azp`: without its
            // client ID every such sign-in would fail.
            return Err(ConfigError::Invalid(
                "GOOGLE_APP_CLIENT_IDS",
                "ALLOW_APP_CODES=true needs the apps' client IDs (their ID tokens name them as azp)",
            ));
        }
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = or_default(name, default);
            google_url(&value).map_err(|why| ConfigError::Invalid(name, why))?;
            Ok(value)
        };

        Ok(Self {
            client_id,
            client_secret: get("GOOGLE_CLIENT_SECRET").map(Secret::new),
            client_secret_arn: get("GOOGLE_CLIENT_SECRET_ARN"),
            token_url: url("GOOGLE_TOKEN_URL", DEFAULT_TOKEN_URL)?,
            revoke_url: url("GOOGLE_REVOKE_URL", DEFAULT_REVOKE_URL)?,
            jwks_url: url("GOOGLE_JWKS_URL", DEFAULT_JWKS_URL)?,
            calendar_api_url: url("GOOGLE_CALENDAR_API_URL", DEFAULT_CALENDAR_API_URL)?
                .trim_end_matches('/')
                .to_owned(),
            risc_jwks_url: url("GOOGLE_RISC_JWKS_URL", DEFAULT_RISC_JWKS_URL)?,
            risc_issuer: or_default("GOOGLE_RISC_ISSUER", DEFAULT_RISC_ISSUER),
            tokens_table,
            kms_key_id,
            allowed_origins: list("ALLOWED_ORIGINS"),
            allowed_redirect_uris: list("ALLOWED_REDIRECT_URIS"),
            allowed_hosted_domains: (!hosted.is_empty()).then_some(hosted),
            http_timeout,
            event_bus_name: get("EVENT_BUS_NAME"),
            allow_app_codes,
            app_client_ids,
            sweep,
        })
    }
}

/// A Google endpoint override must be `https://`; plain `http://` only to this
/// machine (the local emulator), never across a network.
fn google_url(value: &str) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(value).map_err(|_| "not an absolute URL")?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be https:// (http:// only to a loopback address)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("GOOGLE_CLIENT_ID", "client.apps.googleusercontent.com"),
        ("TOKENS_TABLE", "tokens"),
        ("TOKENS_KMS_KEY_ID", "alias/tokens"),
    ];

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for missing in ["GOOGLE_CLIENT_ID", "TOKENS_TABLE", "TOKENS_KMS_KEY_ID"] {
            let vars: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = Config::from_lookup(true, lookup(&vars)).unwrap_err();
            assert_eq!(err, ConfigError::Missing(missing));
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn kms_key_is_optional_for_functions_that_never_touch_tokens() {
        let vars: Vec<_> = BASE[..2].to_vec();
        assert!(Config::from_lookup(false, lookup(&vars)).is_ok());
    }

    #[test]
    fn defaults_and_lists() {
        let mut vars = BASE.to_vec();
        vars.push(("ALLOWED_ORIGINS", " https://a.example , https://b.example,"));
        vars.push(("ALLOWED_HOSTED_DOMAINS", ""));
        let config = Config::from_lookup(true, lookup(&vars)).unwrap();
        assert_eq!(config.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(config.allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(config.allowed_hosted_domains, None);
        assert_eq!(config.http_timeout, DEFAULT_HTTP_TIMEOUT);
    }

    #[test]
    fn google_urls_must_be_https_except_on_loopback() {
        let with = |url: &str| {
            let mut vars = BASE.to_vec();
            vars.push(("GOOGLE_TOKEN_URL", url));
            Config::from_lookup(true, lookup(&vars))
        };
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8080/token",
            "http://localhost:8080/token",
            "http://[::1]:8080/token",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://oauth2.googleapis.com/token",
            "http://10.0.0.1/token",
            "ftp://127.0.0.1/token",
            "token",
        ] {
            assert!(
                matches!(with(bad), Err(ConfigError::Invalid("GOOGLE_TOKEN_URL", _))),
                "{bad}"
            );
        }
    }

    #[test]
    fn app_codes_need_the_apps_client_ids() {
        let mut vars = BASE.to_vec();
        vars.push(("ALLOW_APP_CODES", "true"));
        assert!(matches!(
            Config::from_lookup(true, lookup(&vars)),
            Err(ConfigError::Invalid("GOOGLE_APP_CLIENT_IDS", _))
        ));
        vars.push((
            "GOOGLE_APP_CLIENT_IDS",
            "ios.apps.googleusercontent.com, android.apps.googleusercontent.com",
        ));
        let config = Config::from_lookup(true, lookup(&vars)).unwrap();
        assert!(config.allow_app_codes);
        assert_eq!(config.app_client_ids.len(), 2);
        vars.push(("ALLOW_APP_CODES", "maybe"));
        let mut bad = BASE.to_vec();
        bad.push(("ALLOW_APP_CODES", "maybe"));
        assert!(Config::from_lookup(true, lookup(&bad)).is_err());
    }

    #[test]
    fn the_sweep_periods_are_whole_days() {
        let mut vars = BASE.to_vec();
        vars.push(("KEEP_ALIVE_AFTER_DAYS", "0"));
        vars.push(("GRANT_EXPIRY_NOTICE_DAYS", "3"));
        let config = Config::from_lookup(true, lookup(&vars)).unwrap();
        assert_eq!((config.sweep.keep_alive_secs, config.sweep.notice_secs), (0, 3 * DAY));
        let mut bad = BASE.to_vec();
        bad.push(("KEEP_ALIVE_AFTER_DAYS", "1.5"));
        assert!(Config::from_lookup(true, lookup(&bad)).is_err());
    }

    #[test]
    fn timeout_above_ten_seconds_is_refused() {
        let mut vars = BASE.to_vec();
        vars.push(("HTTP_TIMEOUT_MS", "20000"));
        assert!(matches!(
            Config::from_lookup(true, lookup(&vars)),
            Err(ConfigError::Invalid("HTTP_TIMEOUT_MS", _))
        ));
    }
}
