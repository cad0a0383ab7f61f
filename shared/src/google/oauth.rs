//! Google's OAuth 2.0 token endpoint through the `oauth2` crate (client credentials in
//! the body, `redirect_uri=postmessage` as an extra parameter because it is not an
//! absolute URL). Revocation is in `revoke`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthorizationCode, Client, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, HttpRequest, HttpResponse, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::outbound::{self, Attempt, Transport, retry, retry_after};
use crate::secret::Secret;
use crate::types::{IdToken, ScopeSet};
pub use crate::upstream::{TokenError, TokenGrant};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Google adds `id_token`, and for time-limited access `refresh_token_expires_in`,
/// to the standard token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoogleFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<u64>,
}

impl ExtraTokenFields for GoogleFields {}

type GoogleTokenResponse = StandardTokenResponse<GoogleFields, BasicTokenType>;
type GoogleOAuth = Client<
    BasicErrorResponse,
    GoogleTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// May the request be sent again once it may have reached Google?
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Authorization codes are single-use: only a request that provably never left
    /// (connection refused) is retried.
    Never,
    /// Refreshing is idempotent on Google's side.
    Safe,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Transport(Transport),
    #[error("HTTP {status}")]
    Status { status: u16, retry_after: Option<u32> },
    #[error("request could not be built")]
    Build,
}

pub struct OAuthClient {
    client: GoogleOAuth,
    pub(super) http: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) revoke_url: String,
}

impl OAuthClient {
    /// `client_secret` is `None` for a function that only revokes (revocation needs
    /// no client authentication); such a client never calls the token endpoint.
    pub fn new(
        client_id: &str,
        client_secret: Option<&Secret>,
        token_url: &str,
        revoke_url: &str,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<Self, String> {
        let token_url = TokenUrl::new(token_url.to_owned()).map_err(|e| format!("GOOGLE_TOKEN_URL: {e}"))?;
        let mut client = Client::new(ClientId::new(client_id.to_owned()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        if let Some(secret) = client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(Self {
            client,
            http,
            timeout,
            revoke_url: revoke_url.to_owned(),
        })
    }

    pub fn exchange_code<'a>(
        &'a self,
        code: &Secret,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<TokenGrant, TokenError>> {
        let code = AuthorizationCode::new(code.expose().to_owned());
        Box::pin(async move {
            let send = Sender {
                http: &self.http,
                timeout: self.timeout,
                replay: Replay::Never,
            };
            let response = self
                .client
                .exchange_code(code)
                .add_extra_param("redirect_uri", redirect_uri)
                .request_async(&send)
                .await;
            into_grant(response)
        })
    }

    /// A new access token; with `scopes`, for that subset of the grant only (RFC 6749
    /// §6), which Google's token endpoint honours.
    pub fn refresh<'a>(
        &'a self,
        refresh_token: &Secret,
        scopes: Option<&ScopeSet>,
    ) -> BoxFuture<'a, Result<TokenGrant, TokenError>> {
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let scopes: Vec<Scope> = scopes
            .into_iter()
            .flat_map(|s| s.iter().cloned().map(Scope::new))
            .collect();
        Box::pin(async move {
            let send = Sender {
                http: &self.http,
                timeout: self.timeout,
                replay: Replay::Safe,
            };
            let response = self
                .client
                .exchange_refresh_token(&token)
                .add_scopes(scopes)
                .request_async(&send)
                .await;
            into_grant(response)
        })
    }
}

/// The `oauth2` HTTP client: our reqwest client plus the retry rule for this call.
/// A named type rather than a closure so its futures are provably `Send`.
struct Sender<'a> {
    http: &'a reqwest::Client,
    timeout: Duration,
    replay: Replay,
}

impl<'c> AsyncHttpClient<'c> for Sender<'_> {
    type Error = Failure;
    type Future = BoxFuture<'c, Result<HttpResponse, Failure>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.http, self.timeout, request, self.replay))
    }
}

async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    request: HttpRequest,
    replay: Replay,
) -> Result<HttpResponse, Failure> {
    retry("token endpoint", |_| async {
        let Ok(outbound) = reqwest::Request::try_from(request.clone()) else {
            return Attempt::Done(Err(Failure::Build));
        };
        let builder = reqwest::RequestBuilder::from_parts(http.clone(), outbound);
        let failure = match outbound::send(http, timeout, builder).await {
            Ok(response) => {
                let status = response.status();
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Attempt::Done(into_http_response(response).await);
                }
                Failure::Status {
                    status: status.as_u16(),
                    retry_after: retry_after(response.headers()),
                }
            }
            Err(transport) => Failure::Transport(transport),
        };
        // Codes are single-use: only a request that provably never left is retried.
        let may_retry = match (&failure, replay) {
            (Failure::Transport(Transport::Unreachable), _) => true,
            (Failure::Status { status, .. }, Replay::Safe) => *status != 429,
            (Failure::Transport(_), Replay::Safe) => true,
            _ => false,
        };
        if may_retry {
            Attempt::Retry(failure, None)
        } else {
            Attempt::Done(Err(failure))
        }
    })
    .await
}

async fn into_http_response(response: reqwest::Response) -> Result<HttpResponse, Failure> {
    let mut builder = http::Response::builder().status(response.status());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(response.headers().clone());
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::Transport(Transport::classify(&e)))?;
    builder.body(body.to_vec()).map_err(|_| Failure::Build)
}

fn into_grant(
    response: Result<GoogleTokenResponse, RequestTokenError<Failure, BasicErrorResponse>>,
) -> Result<TokenGrant, TokenError> {
    match response {
        Ok(token) => Ok(TokenGrant {
            access_token: Secret::new(token.access_token().secret().clone()),
            expires_in: token.expires_in(),
            refresh_token: token.refresh_token().map(|t| Secret::new(t.secret().clone())),
            refresh_token_expires_in: token.extra_fields().refresh_token_expires_in.map(Duration::from_secs),
            scopes: token.scopes().map(|scopes| scopes.iter().map(|s| s.as_str()).collect()),
            id_token: match token.extra_fields().id_token.as_deref() {
                None => None,
                Some(raw) => {
                    Some(IdToken::parse(raw).ok_or_else(|| TokenError::Unusable("id_token is not a JWT".into()))?)
                }
            },
        }),
        Err(RequestTokenError::ServerResponse(err)) => match err.error() {
            BasicErrorResponseType::InvalidGrant => Err(TokenError::InvalidGrant),
            BasicErrorResponseType::InvalidScope => Err(TokenError::InvalidScope),
            other => Err(TokenError::Unusable(format!(
                "token endpoint refused: {}",
                other.as_ref()
            ))),
        },
        Err(RequestTokenError::Request(failure)) => Err(match failure {
            Failure::Status {
                status: 429,
                retry_after,
            } => TokenError::RateLimited { retry_after },
            Failure::Status { status, .. } => TokenError::Unavailable(format!("token endpoint answered {status}")),
            Failure::Transport(Transport::Lost) => {
                TokenError::Unusable("connection lost before Google answered".into())
            }
            Failure::Transport(t) => TokenError::Unavailable(t.to_string()),
            Failure::Build => TokenError::Unusable("request could not be built".into()),
        }),
        // The body is deliberately dropped: it may hold tokens.
        Err(RequestTokenError::Parse(_, _)) => {
            Err(TokenError::Unusable("token response is not the expected JSON".into()))
        }
        Err(RequestTokenError::Other(reason)) => Err(TokenError::Unusable(reason)),
    }
}
