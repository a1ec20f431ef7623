//! Putting the relay together: routes, start-up and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Error;
use crate::state::AppState;
use crate::store::Store;
use crate::{auth, http, web, ws};

/// The relay's routes over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws::upgrade))
        .merge(http::routes())
        .merge(web::routes(&state.config.web_dir))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::restrict_framing))
        .with_state(state)
}

/// Runs a relay on `listener` until `shutdown` completes, then drains:
/// every client is told to reconnect, connections get `config.drain_ms` to
/// close, and the store is flushed and closed.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = Store::open(&config.data_dir).await?;
    if let Some(password) = auth::bootstrap(&store, &config.admin_email, config.admin_password.as_deref()).await? {
        // Printed once, on the first start only: it is not stored anywhere
        // in clear.
        println!(
            "created site `demo` and admin {} with password: {password}\n(change it after logging in; it is not shown again)",
            config.admin_email
        );
    }
    let drain = Duration::from_millis(config.drain_ms);
    let state = AppState::new(config, store);
    tracing::info!(addr = %listener.local_addr()?, "kefu relay listening");

    let draining = state.clone();
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: telling clients to reconnect");
            draining.shutdown.cancel();
        })
        .await?;

    state.connections.close();
    if tokio::time::timeout(drain, state.connections.wait()).await.is_err() {
        tracing::warn!("some connections did not close within the drain time");
    }
    state.store.close().await;
    Ok(())
}
