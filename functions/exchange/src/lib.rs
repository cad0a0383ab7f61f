//! `POST /auth/exchange`: a one-time Google authorization code (the popup code
//! model, or a phone app's server auth code, with offline access) becomes a verified
//! identity and a KMS-encrypted refresh token.

use ::http::{Method, StatusCode};
use lambda_http::Request;
use shared::cases::SignIn;
use shared::http::views::SignedInView;
use shared::http::{self, Cors, RedirectUris, Response, Route};
use shared::{ApiError, Boot, Needs, Secret};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/auth/exchange")];

pub struct Exchange {
    cors: Cors,
    redirect_uris: RedirectUris,
    sign_in: SignIn,
}

impl Exchange {
    /// Google's token endpoint (with the secret), ID tokens, KMS `Encrypt`, the table.
    pub fn new(boot: &Boot) -> Self {
        Self {
            cors: boot.cors(),
            redirect_uris: boot.redirect_uris(),
            sign_in: SignIn::new(
                boot.google_oauth(),
                boot.id_tokens(),
                boot.sealer(),
                boot.grants(),
                boot.ambient.clone(),
            ),
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        http::serve(&self.cors, &ROUTES, req, |_, req| self.exchange(req)).await
    }

    async fn exchange(&self, req: Request) -> Result<Response, ApiError> {
        http::require_csrf_header(&self.cors, &req)?;
        let body = http::json_object(http::json_body(&req)?)?;
        let code = Secret::new(http::required_string(&body, "code")?);
        let redirect_uri = self.redirect_uris.of(&body)?;

        let signed_in = self.sign_in.exchange(&code, &redirect_uri).await?;
        let view = SignedInView::new(
            &signed_in.identity.profile,
            &signed_in.grant,
            signed_in.id_token.as_str(),
            signed_in.identity.expires_at,
        );
        Ok(http::json_response(StatusCode::OK, &view))
    }
}
