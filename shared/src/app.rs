//! Everything a function needs, built once per cold start and reused by every
//! invocation of the warm container: configuration, one HTTP client, the JWKS
//! caches, the OAuth and Calendar clients, the vault and the access-token cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use crate::config::Config;
use crate::google::{CalendarClient, IdTokenVerifier, JwksCache, OAuthClient, SecurityEventVerifier, outbound};
use crate::http::Cors;
use crate::secret::Secret;
use crate::vault::{Ciphertext, Vault};

/// What a function requires of its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Encrypts or decrypts tokens: `TOKENS_KMS_KEY_ID` is required.
    pub kms: bool,
    /// Calls the token endpoint: the client secret is required.
    pub client_secret: bool,
}

pub struct App {
    pub config: Config,
    pub cors: Cors,
    pub verifier: IdTokenVerifier,
    pub risc: SecurityEventVerifier,
    pub oauth: OAuthClient,
    pub calendar: CalendarClient,
    pub vault: Vault,
    pub access_tokens: AccessTokenCache,
}

impl App {
    /// The cold-start path of every `main.rs`. A configuration problem ends the
    /// process with one log line naming the variable, before the first invocation.
    pub async fn from_env(needs: Needs) -> App {
        let fail = |message: String| -> ! {
            tracing::error!(error = %message, "cold start failed");
            std::process::exit(1);
        };
        let mut config = Config::from_env(needs.kms).unwrap_or_else(|e| fail(e.to_string()));
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        if needs.client_secret && config.client_secret.is_none() {
            let Some(arn) = config.client_secret_arn.clone() else {
                fail("missing required environment variable GOOGLE_CLIENT_SECRET_ARN (or GOOGLE_CLIENT_SECRET for local runs)".into())
            };
            let secret = read_secret(&aws, &arn).await.unwrap_or_else(|e| fail(e));
            config.client_secret = Some(secret);
        }
        App::build(config, &aws).unwrap_or_else(|e| fail(e))
    }

    /// Builds the clients without touching the network, so tests can point it at
    /// local emulators.
    pub fn build(config: Config, aws: &aws_config::SdkConfig) -> Result<App, String> {
        let http = outbound::http_client(config.http_timeout);
        let aws = aws_sdk_config(aws, config.http_timeout);
        let no_secret = Secret::new("");
        let oauth = OAuthClient::new(
            &config.client_id,
            config.client_secret.as_ref().unwrap_or(&no_secret),
            &config.token_url,
            &config.revoke_url,
            http.clone(),
        )?;
        Ok(App {
            cors: Cors::new(config.allowed_origins.clone()),
            verifier: IdTokenVerifier::new(
                &config.client_id,
                JwksCache::new(&config.jwks_url, http.clone()),
                config.allowed_hosted_domains.clone(),
            ),
            risc: SecurityEventVerifier::new(
                &config.client_id,
                &config.risc_issuer,
                JwksCache::new(&config.risc_jwks_url, http.clone()),
            ),
            oauth,
            calendar: CalendarClient::new(&config.calendar_api_url, http),
            vault: Vault::new(
                aws_sdk_dynamodb::Client::new(&aws),
                aws_sdk_kms::Client::new(&aws),
                config.tokens_table.clone(),
                config.kms_key_id.clone(),
                config.client_id.clone(),
            ),
            access_tokens: AccessTokenCache::default(),
            config,
        })
    }
}

/// Bounded retries and timeouts for DynamoDB and KMS, matching the Google side.
fn aws_sdk_config(base: &aws_config::SdkConfig, timeout: Duration) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    base.to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(timeout)
                .build(),
        )
        .build()
}

async fn read_secret(aws: &aws_config::SdkConfig, arn: &str) -> Result<Secret, String> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        format!(
            "could not read GOOGLE_CLIENT_SECRET_ARN: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
        )
    })?;
    out.secret_string
        .map(|s| Secret::new(s.trim()))
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| "GOOGLE_CLIENT_SECRET_ARN holds no secret string".to_owned())
}

/// Access tokens kept in memory for the life of the warm container, keyed by user
/// and by a fingerprint of the refresh-token ciphertext they came from, so a new
/// sign-in or a revocation (which replaces or drops that ciphertext) invalidates
/// them. Never persisted anywhere.
#[derive(Default)]
pub struct AccessTokenCache {
    entries: Mutex<HashMap<String, CachedAccessToken>>,
}

struct CachedAccessToken {
    token: Secret,
    source: digest::Digest,
    expires_at: Instant,
}

/// A token is reused only while more than this much of its life remains.
pub const MIN_REMAINING_LIFETIME: Duration = Duration::from_secs(5 * 60);

impl AccessTokenCache {
    pub fn get(&self, sub: &str, source: &Ciphertext) -> Option<Secret> {
        let entries = self.entries.lock().expect("access-token cache lock");
        let entry = entries.get(sub)?;
        let fresh = entry.expires_at.saturating_duration_since(Instant::now()) > MIN_REMAINING_LIFETIME;
        (fresh && entry.source.as_ref() == fingerprint(source).as_ref()).then(|| entry.token.clone())
    }

    pub fn put(&self, sub: &str, source: &Ciphertext, token: Secret, lifetime: Duration) {
        let entry = CachedAccessToken {
            token,
            source: fingerprint(source),
            expires_at: Instant::now() + lifetime,
        };
        self.entries
            .lock()
            .expect("access-token cache lock")
            .insert(sub.to_owned(), entry);
    }

    pub fn forget(&self, sub: &str) {
        self.entries.lock().expect("access-token cache lock").remove(sub);
    }
}

fn fingerprint(ciphertext: &Ciphertext) -> digest::Digest {
    digest::digest(&digest::SHA256, &ciphertext.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_need_five_minutes_of_life_and_the_same_source() {
        let cache = AccessTokenCache::default();
        let source = Ciphertext(vec![1, 2, 3]);
        cache.put("u", &source, Secret::new("a"), Duration::from_secs(301));
        assert_eq!(cache.get("u", &source).map(|s| s.expose().to_owned()), Some("a".into()));
        assert!(cache.get("u", &Ciphertext(vec![9])).is_none());
        assert!(cache.get("other", &source).is_none());
        cache.put("u", &source, Secret::new("a"), Duration::from_secs(299));
        assert!(cache.get("u", &source).is_none());
        cache.put("u", &source, Secret::new("a"), Duration::from_secs(3600));
        cache.forget("u");
        assert!(cache.get("u", &source).is_none());
    }
}
