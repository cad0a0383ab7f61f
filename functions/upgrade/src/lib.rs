//! `POST /auth/upgrade`: incremental authorization. The signed-in user (bearer ID
//! token) granted more scopes with a new code; the code must belong to the same
//! account, and the grant is updated with what Google says is granted now.

use std::sync::Arc;

use ::http::{Method, StatusCode};
use lambda_http::Request;
use shared::cases::SignIn;
use shared::http::views::GrantView;
use shared::http::{self, Cors, RedirectUris, Response, Route};
use shared::ports::IdTokens;
use shared::{ApiError, Boot, Needs, Secret};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};
pub static ROUTES: [Route; 1] = [Route::new(Method::POST, "/auth/upgrade")];

pub struct Upgrade {
    cors: Cors,
    redirect_uris: RedirectUris,
    id_tokens: Arc<dyn IdTokens>,
    sign_in: SignIn,
}

impl Upgrade {
    /// As `exchange`, plus the bearer ID token of the caller.
    pub fn new(boot: &Boot) -> Self {
        let id_tokens = boot.id_tokens();
        Self {
            cors: boot.cors(),
            redirect_uris: boot.redirect_uris(),
            sign_in: SignIn::new(
                boot.google_oauth(),
                id_tokens.clone(),
                boot.sealer(),
                boot.grants(),
                boot.ambient.clone(),
            ),
            id_tokens,
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        http::serve(&self.cors, &ROUTES, req, |_, req| self.upgrade(req)).await
    }

    async fn upgrade(&self, req: Request) -> Result<Response, ApiError> {
        http::require_csrf_header(&self.cors, &req)?;
        let identity = http::authenticate(self.id_tokens.as_ref(), &req).await?;
        let body = http::json_object(http::json_body(&req)?)?;
        let code = Secret::new(http::required_string(&body, "code")?);
        let requested = http::scope_list(&body, "scopes")?;
        let redirect_uri = self.redirect_uris.of(&body)?;

        let grant = self
            .sign_in
            .upgrade(identity.sub(), &code, &redirect_uri, &requested)
            .await?;
        Ok(http::json_response(StatusCode::OK, &GrantView::from(&grant)))
    }
}
