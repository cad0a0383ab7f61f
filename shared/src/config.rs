//! Configuration (README, Configuration), read once per cold start.

use std::time::Duration;

use crate::secret::Secret;

pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const DEFAULT_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const DEFAULT_CALENDAR_API_URL: &str = "https://www.googleapis.com/calendar/v3";
pub const DEFAULT_RISC_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const DEFAULT_RISC_ISSUER: &str = "https://accounts.google.com/";
/// Every outbound call must finish within 10 s (README); a little less leaves room
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

        Ok(Self {
            client_id,
            client_secret: get("GOOGLE_CLIENT_SECRET").map(Secret::new),
            client_secret_arn: get("GOOGLE_CLIENT_SECRET_ARN"),
            token_url: or_default("GOOGLE_TOKEN_URL", DEFAULT_TOKEN_URL),
            revoke_url: or_default("GOOGLE_REVOKE_URL", DEFAULT_REVOKE_URL),
            jwks_url: or_default("GOOGLE_JWKS_URL", DEFAULT_JWKS_URL),
            calendar_api_url: or_default("GOOGLE_CALENDAR_API_URL", DEFAULT_CALENDAR_API_URL)
                .trim_end_matches('/')
                .to_owned(),
            risc_jwks_url: or_default("GOOGLE_RISC_JWKS_URL", DEFAULT_RISC_JWKS_URL),
            risc_issuer: or_default("GOOGLE_RISC_ISSUER", DEFAULT_RISC_ISSUER),
            tokens_table,
            kms_key_id,
            allowed_origins: list("ALLOWED_ORIGINS"),
            allowed_redirect_uris: list("ALLOWED_REDIRECT_URIS"),
            allowed_hosted_domains: (!hosted.is_empty()).then_some(hosted),
            http_timeout,
            event_bus_name: get("EVENT_BUS_NAME"),
        })
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
    fn timeout_above_ten_seconds_is_refused() {
        let mut vars = BASE.to_vec();
        vars.push(("HTTP_TIMEOUT_MS", "20000"));
        assert!(matches!(
            Config::from_lookup(true, lookup(&vars)),
            Err(ConfigError::Invalid("HTTP_TIMEOUT_MS", _))
        ));
    }
}
