//! `GET /me` (what the frontend needs to decide whether to show "Connect Calendar")
//! and `DELETE /me/google` (revoke at Google, then delete the stored grant).

use std::sync::Arc;

use ::http::{Method, StatusCode};
use lambda_http::Request;
use shared::cases::Disconnect;
use shared::http::views::MeView;
use shared::http::{self, Cors, Response, Route};
use shared::ports::{GrantStore, IdTokens};
use shared::{ApiError, Boot, Needs};

/// Revoking needs no client authentication: no client secret here.
pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: false,
};
pub static ROUTES: [Route; 2] = [Route::new(Method::GET, "/me"), Route::new(Method::DELETE, "/me/google")];

pub struct Account {
    cors: Cors,
    id_tokens: Arc<dyn IdTokens>,
    grants: Arc<dyn GrantStore>,
    disconnect: Disconnect,
}

impl Account {
    /// ID tokens, the table (read, delete), KMS `Decrypt` and Google's revoke endpoint.
    pub fn new(boot: &Boot) -> Self {
        let grants = boot.grants();
        Self {
            cors: boot.cors(),
            id_tokens: boot.id_tokens(),
            disconnect: Disconnect::new(grants.clone(), boot.sealer(), boot.google_oauth(), boot.ambient.clone()),
            grants,
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        http::serve(&self.cors, &ROUTES, req, |route, req| async move {
            let identity = http::authenticate(self.id_tokens.as_ref(), &req).await?;
            if route.method == Method::GET {
                let grant = self.grants.load(identity.sub()).await?;
                let view = MeView::new(&identity.profile, grant.as_ref());
                Ok(http::json_response(StatusCode::OK, &view))
            } else {
                self.disconnect.run(identity.sub()).await?;
                Ok::<_, ApiError>(http::empty(StatusCode::NO_CONTENT))
            }
        })
        .await
    }
}
