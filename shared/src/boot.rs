//! The cold start: configuration, the process's clock and randomness, one HTTP
//! client (for Google and the AWS SDK alike) and the AWS SDK configuration, then the
//! adapters a function asks for, each built only by the functions that use it (so a
//! function's `main.rs` reads like its IAM policy). Nothing here touches the
//! network except reading the client secret when it comes from Secrets Manager. A
//! configuration problem ends the process with one log line naming the variable,
//! before the first invocation.

use std::sync::Arc;

use crate::aws::shared_tokens::DynamoSharedTokens;
use crate::aws::{DynamoGrants, EventBridgeSink, KmsSealer};
use crate::cases::AccessTokens;
use crate::config::{Config, Needs};
use crate::google::{CalendarClient, IdTokenVerifier, JwksCache, OAuthClient, SecurityEventVerifier};
use crate::http::{Cors, RedirectUris};
use crate::secret::Secret;
use crate::system::Ambient;

pub struct Boot {
    pub config: Config,
    pub aws: aws_config::SdkConfig,
    pub http: reqwest::Client,
    pub ambient: Ambient,
}

/// Ends the cold start with one log line.
pub fn fail(message: &str) -> ! {
    tracing::error!(error = %message, "cold start failed");
    std::process::exit(1);
}

impl Boot {
    /// The cold-start path of every `main.rs`.
    pub async fn from_env(function: &str, needs: Needs) -> Boot {
        crate::telemetry::init(function);
        let mut config = Config::from_env(needs).unwrap_or_else(|e| fail(&e.to_string()));
        crate::system::seed_randomness();
        // jsonwebtoken's one crypto backend, named rather than guessed from features.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let http = crate::outbound::http_client(config.http_timeout);
        let defaults = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let loaded = crate::aws::from_lambda_environment(defaults, |name| std::env::var(name).ok())
            .http_client(crate::aws::http::http_client(&http))
            .load()
            .await;
        let aws = crate::aws::sdk_config(&loaded, config.http_timeout, &http);
        if needs.client_secret && config.client_secret.is_none() {
            let Some(arn) = config.client_secret_arn.clone() else {
                fail(
                    "missing required environment variable GOOGLE_CLIENT_SECRET_ARN (or GOOGLE_CLIENT_SECRET for local runs)",
                )
            };
            let secret = crate::aws::secrets::read_client_secret(&aws, &arn).await;
            config.client_secret = Some(secret.unwrap_or_else(|e| fail(&e)));
        }
        Boot {
            config,
            aws,
            http,
            ambient: Ambient::system(),
        }
    }

    /// Without touching the network, so tests can point it at local emulators.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Boot {
        let http = crate::outbound::http_client(config.http_timeout);
        Boot {
            aws: crate::aws::sdk_config(aws, config.http_timeout, &http),
            http,
            config,
            ambient: Ambient::system(),
        }
    }

    pub fn cors(&self) -> Cors {
        Cors::new(self.config.allowed_origins.clone())
    }

    pub fn redirect_uris(&self) -> RedirectUris {
        RedirectUris {
            allowed: self.config.allowed_redirect_uris.clone(),
            app_codes: self.config.allow_app_codes,
        }
    }

    /// The tokens table.
    pub fn table(&self) -> DynamoGrants {
        DynamoGrants::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.config.tokens_table.clone(),
            self.config.client_id.clone(),
            self.config.sweep,
        )
    }

    pub fn grants(&self) -> Arc<DynamoGrants> {
        Arc::new(self.table())
    }

    pub fn shared_tokens(&self) -> Arc<DynamoSharedTokens> {
        Arc::new(DynamoSharedTokens::new(self.table()))
    }

    pub fn sealer(&self) -> Arc<KmsSealer> {
        let key = self
            .config
            .kms_key_id
            .clone()
            .unwrap_or_else(|| fail("missing required environment variable TOKENS_KMS_KEY_ID"));
        Arc::new(KmsSealer::new(
            aws_sdk_kms::Client::new(&self.aws),
            key,
            self.config.client_id.clone(),
        ))
    }

    /// Access tokens for users who are not there, shared with the fleet.
    pub fn access_tokens(&self) -> AccessTokens {
        AccessTokens::new(self.grants(), self.sealer(), self.google_oauth(), self.ambient.clone())
            .with_shared(self.shared_tokens())
    }

    pub fn id_tokens(&self) -> Arc<IdTokenVerifier> {
        let jwks = JwksCache::new(&self.config.jwks_url, self.http.clone(), self.config.http_timeout);
        let verifier = IdTokenVerifier::new(&self.config.client_id, jwks, self.config.allowed_hosted_domains.clone());
        Arc::new(verifier.with_app_clients(&self.config.app_client_ids))
    }

    pub fn security_events(&self) -> Arc<SecurityEventVerifier> {
        let jwks = JwksCache::new(&self.config.risc_jwks_url, self.http.clone(), self.config.http_timeout);
        Arc::new(SecurityEventVerifier::new(
            &self.config.client_id,
            &self.config.risc_issuer,
            jwks,
        ))
    }

    /// The token endpoint with the client secret (exchange and refresh), or without
    /// it for a function that only revokes.
    pub fn google_oauth(&self) -> Arc<OAuthClient> {
        let secret: Option<&Secret> = self.config.client_secret.as_ref();
        let client = OAuthClient::new(
            &self.config.client_id,
            secret,
            &self.config.token_url,
            &self.config.revoke_url,
            self.http.clone(),
            self.config.http_timeout,
        );
        Arc::new(client.unwrap_or_else(|e| fail(&e)))
    }

    pub fn calendar(&self) -> Arc<CalendarClient> {
        Arc::new(CalendarClient::new(
            &self.config.calendar_api_url,
            self.http.clone(),
            self.config.http_timeout,
        ))
    }

    /// The team's bus, when `EVENT_BUS_NAME` is set (else outcomes are only logged).
    pub fn event_sink(&self) -> Option<Arc<EventBridgeSink>> {
        let bus = self.config.event_bus_name.clone()?;
        let client = aws_sdk_eventbridge::Client::new(&self.aws);
        Some(Arc::new(EventBridgeSink::new(client, bus)))
    }
}
