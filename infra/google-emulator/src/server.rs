//! Routing and the accept loop.
//!
//! Connections are served with hyper directly (not `axum::serve`) so that a
//! fault can close a connection without any response: when the service
//! returns `Err`, hyper drops the connection without writing anything.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::faults::DropConnection;
use crate::state::State;
use crate::{calendar, certs, control, gis, token};

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere must not wedge every later request.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/token", post(token::token))
        .route("/revoke", post(token::revoke))
        .route("/oauth2/v3/certs", get(certs::jwks))
        .route("/risc/certs", get(certs::risc_jwks))
        .route("/calendar/v3/calendars/{calendar_id}/events", post(calendar::insert))
        .route(
            "/calendar/v3/calendars/{calendar_id}/events/{event_id}",
            get(calendar::get),
        )
        // Google Identity Services stand-in: the code-model script and its consent popup.
        .route("/gsi/client", get(gis::client_script))
        .route("/gsi/popup.js", get(gis::popup_script))
        .route("/gsi/avatars/{file}", get(gis::avatar))
        .route("/o/oauth2/v2/auth", get(gis::consent).post(gis::approve))
        .nest("/emulator", control::routes())
        .with_state(shared)
}

#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Stops the server thread when dropped.
pub(crate) struct ServerHandle {
    shutdown: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            // The accept loop ends at once; joining makes the port free (and
            // every connection closed) by the time the emulator is gone.
            let _ = thread.join();
        }
    }
}

/// Serves on a dedicated thread with its own runtime: a test's runtime may
/// end (or be a different one per test) while the emulator lives on.
pub(crate) fn launch(
    listener: std::net::TcpListener,
    router: Router,
    worker_threads: usize,
) -> std::io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    let runtime = if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(worker_threads).enable_all().build()?
    };
    let (shutdown, stop) = watch::channel(());
    let thread = std::thread::Builder::new()
        .name("google-emulator".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, router, stop).await,
                    Err(error) => tracing::error!(%error, "cannot register the listener"),
                }
            });
        })?;
    Ok(ServerHandle {
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

/// Serves until the shutdown sender is dropped (or sends); open connections
/// are closed then too.
async fn serve(listener: TcpListener, router: Router, shutdown: watch::Receiver<()>) {
    loop {
        let mut stop = shutdown.clone();
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let router = router.clone();
                async move {
                    let Ok(response) = router.oneshot(request).await;
                    if response.extensions().get::<DropConnection>().is_some() {
                        Err(ConnectionDropped)
                    } else {
                        Ok(response)
                    }
                }
            });
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}
