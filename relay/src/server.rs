//! Putting the relay together: routes, start-up and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Error;
use crate::limits::{ClientAddress, TrustedProxies};
use crate::state::AppState;
use crate::store::Store;
use crate::tls::Certificates;
use crate::{auth, cluster, http, mail, metrics, web, ws};

/// The relay's routes over `state`, every request counted in its
/// metrics; `/metrics` among them unless `--metrics-listen` serves it
/// apart.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/ws", get(ws::upgrade))
        .merge(http::routes())
        .merge(web::routes(web::WebFiles::from_config(&state.config)));
    if state.config.metrics_listen.is_none() {
        router = router.merge(metrics::routes(Arc::clone(&state.metrics)));
    }
    router
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state.metrics), metrics::count_requests))
        .with_state(state)
}

/// Runs a relay on `listener` until `shutdown` completes, then drains:
/// every WebSocket client is told to reconnect, and for up to
/// `config.drain_ms`, until the last WebSocket has closed, the relay goes on
/// answering HTTP: `/readyz` and new WebSocket upgrades with 503, so that a
/// balancer sends clients to another node rather than to a closed port.
/// Then it stops accepting and the store is flushed and closed.
///
/// With `--tls-cert` and `--tls-key` it serves HTTPS and `wss://`, and on
/// unix reads both files again on every SIGHUP (`tls::Certificates`).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // First, so that a bad certificate stops the start before anything
    // is opened or created.
    let tls = Certificates::from_config(&config)?;
    let mailer = mail::Mailer::from_config(&config).map_err(|error| Error::BadRequest(error.to_string()))?;
    let store = Store::connect(config.database_url.as_deref(), &config.data_dir).await?;
    if let Some(password) = auth::bootstrap(&store, &config.admin_email, config.admin_password.as_deref()).await? {
        // Printed once, on the first start only: it is not stored anywhere
        // in clear.
        println!(
            "created site `demo` and admin {} with password: {password}\n(change it after logging in; it is not shown again)",
            config.admin_email
        );
    }
    for email in &config.owner_emails {
        store.add_owner(email.trim()).await?;
    }
    let drain = Duration::from_millis(config.drain_ms);
    let header_read_timeout = Duration::from_millis(config.header_read_timeout_ms);
    let proxies = TrustedProxies::new(config.trusted_proxies.clone());
    let state = AppState::with_mail(config, store, mailer);
    if let Some(url) = &state.config.redis_url {
        let cluster = cluster::join(&state, url, &state.config.redis_prefix)
            .map_err(|error| Error::BadRequest(format!("--redis-url: {error}")))?;
        state.dispatcher.share(cluster);
    }
    tracing::info!(addr = %listener.local_addr()?, "kefu relay listening");
    let metrics_stopped = CancellationToken::new();
    let metrics_serving = match state.config.metrics_listen {
        Some(addr) => {
            let metrics_listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
            let app = metrics::routes(Arc::clone(&state.metrics));
            let stopped = metrics_stopped.clone().cancelled_owned();
            let serving = serve(metrics_listener, app, None, header_read_timeout, proxies.clone(), stopped);
            Some(tokio::spawn(serving))
        }
        None => None,
    };

    #[cfg(unix)]
    let reloading = tokio::spawn(reload_on_sighup(tls.clone())?);
    let forgetting = tokio::spawn(forget_idle_addresses(state.clone()));
    let expiring = tokio::spawn(expire_empty_conversations(state.clone()));
    let sweeping = tokio::spawn(crate::attachments::sweep(state.clone()));
    let mail_stopped = CancellationToken::new();
    let mailing = state.mail.start(state.store.clone(), mail_stopped.clone());
    let keeping_hours = tokio::spawn(crate::team::keep_hours(state.clone()));
    let draining = state.clone();
    serve(listener, app(state.clone()), tls, header_read_timeout, proxies, async move {
        shutdown.await;
        tracing::info!("draining: telling clients to reconnect elsewhere");
        draining.shutdown.cancel();
        draining.connections.close();
        if tokio::time::timeout(drain, draining.connections.wait()).await.is_err() {
            tracing::warn!("some connections did not close within the drain time");
        }
    })
    .await;
    forgetting.abort();
    expiring.abort();
    sweeping.abort();
    keeping_hours.abort();
    #[cfg(unix)]
    reloading.abort();
    metrics_stopped.cancel();
    if let Some(serving) = metrics_serving {
        let _ = serving.await;
    }
    // The sender finishes the mail it is sending, then stops; one it
    // claimed and did not send is retried once its lease runs out.
    mail_stopped.cancel();
    if let Some(mailing) = mailing {
        let _ = mailing.await;
    }
    state.store.close().await;
    Ok(())
}

/// Serves HTTP/1.1 (and WebSocket upgrades) on `listener`, over TLS with
/// the certificate `tls` holds when a connection comes in, until `shutdown`
/// completes, then lets requests in progress finish. Like `axum::serve`,
/// which this replaces because it sets no timer: a client could take
/// forever over its request headers (slowloris), one connection and one
/// task each. Here the headers must be in within `header_read_timeout`,
/// idle keep-alive connections included; so must a TLS handshake, made
/// in the connection's own task so that a slow one holds up no other.
/// Each request carries the peer's address as `ConnectInfo<SocketAddr>`
/// and the client's, as `proxies` tell it, as [`ClientAddress`] for the
/// rate limits.
async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Certificates>,
    header_read_timeout: Duration,
    proxies: TrustedProxies,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    // Tells every connection to finish its request and close.
    let (stop, _) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some
                    // to close rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Chat frames are small and latency matters more than packing
        // them: without this, Nagle holds a reply for up to 40 ms behind
        // an unacknowledged one.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
        }
        let client = Client { peer, proxies: proxies.clone() };
        let handshake = tls.as_ref().map(|tls| Handshake { acceptor: tls.acceptor(), timeout: header_read_timeout });
        connections.spawn(serve_connection(http.clone(), stream, handshake, client, app.clone(), stop.subscribe()));
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    stop.send_replace(true);
    while connections.join_next().await.is_some() {}
}

/// Where a connection comes from, and whom to believe about its requests.
struct Client {
    peer: SocketAddr,
    proxies: TrustedProxies,
}

/// A TLS handshake to make before any HTTP, and how long it may take.
struct Handshake {
    /// Taken when the connection was accepted: a reload afterwards does
    /// not change the certificate it is offered.
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    handshake: Option<Handshake>,
    client: Client,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let Some(Handshake { acceptor, timeout }) = handshake else {
        return serve_http(http, stream, client, app, stop).await;
    };
    let peer = client.peer;
    let stream = tokio::select! {
        done = tokio::time::timeout(timeout, acceptor.accept(stream)) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                // Plain HTTP on the TLS port, or a client that does not
                // trust the certificate: its business, not an error here.
                tracing::debug!(%error, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = stop.wait_for(|stop| *stop) => return,
    };
    serve_http(http, stream, client, app, stop).await;
}

async fn serve_http<S>(
    http: hyper::server::conn::http1::Builder,
    stream: S,
    client: Client,
    app: Router,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Client { peer, proxies } = client;
    let service = tower::ServiceExt::map_request(app, move |mut request: Request<_>| {
        let address = proxies.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(ClientAddress(Some(address)));
        request
    });
    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "http connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
    }
    if let Err(error) = connection.await {
        tracing::debug!(%error, %peer, "http connection ended with an error");
    }
}

/// SIGHUP reloads what the relay can reload: the TLS certificate, when it
/// serves TLS itself. Handled with TLS or without, so that `systemctl
/// reload` (the unit's `ExecReload` sends SIGHUP) never ends a relay, as
/// the signal's default action would. Registered before the relay
/// serves, so no SIGHUP after that meets the default.
#[cfg(unix)]
fn reload_on_sighup(tls: Option<Certificates>) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            match &tls {
                Some(tls) => tls.reload_logged(),
                None => tracing::info!("SIGHUP: nothing to reload (no --tls-cert)"),
            }
        }
    })
}

/// Every minute, deletes the open conversations nobody wrote in that are
/// older than `--empty-conversation-ttl-secs`, so that visitors who never
/// say anything do not pile up rows. On several nodes each one sweeps; the
/// deletes are idempotent.
async fn expire_empty_conversations(state: AppState) {
    let ttl_ms = state.config.empty_conversation_ttl_secs.saturating_mul(1000);
    if ttl_ms == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let cutoff = kefu_protocol::ids::Timestamp(crate::store::now().0.saturating_sub(ttl_ms));
        match state.store.expire_empty_conversations(cutoff).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired empty conversations"),
            Err(error) => tracing::warn!(%error, "could not expire empty conversations"),
        }
    }
}

/// Every minute, forgets the addresses whose rate limit buckets are full
/// again.
async fn forget_idle_addresses(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        state.limiters.forget_idle();
    }
}
