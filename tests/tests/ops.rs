//! The relay as an operator runs it behind a load balancer: `/readyz`,
//! the drain after SIGTERM, and the Prometheus metrics.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kefu_tests::postgres::Database;
use kefu_tests::raw::Raw;
use kefu_tests::{PATIENCE, Proxy, Relay};

/// `GET url`: its status and body.
async fn get(url: &str) -> Result<(u16, String)> {
    let response = reqwest::get(url).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Asks `url` until it answers `status`, for at most [`PATIENCE`]; returns
/// that answer's body. Fails with the last answer seen.
async fn poll_until(url: &str, status: u16) -> Result<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let last = get(url).await;
        match &last {
            Ok((got, body)) if *got == status => return Ok(body.clone()),
            _ if tokio::time::Instant::now() >= deadline => {
                bail!("{url} never answered {status} within {PATIENCE:?}; last: {last:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn a_running_relay_is_ready() -> Result<()> {
    let relay = Relay::start().await?;
    relay.wait_healthy().await?;
    assert_eq!(get(&format!("{}/readyz", relay.http_url())).await?, (200, "ready\n".into()));
    Ok(())
}

#[tokio::test]
async fn a_draining_relay_is_not_ready_refuses_new_websockets_and_stops_when_the_last_one_goes() -> Result<()> {
    // The drain lasts as long as a WebSocket is open, up to --drain-ms. A
    // visitor is told to reconnect and leaves at once; a socket that has
    // not said hello yet stays until its hello timeout: that one holds the
    // drain open here.
    let mut relay = Relay::start_with(&["--drain-ms", "120000", "--hello-timeout-ms", "120000"]).await?;
    relay.wait_healthy().await?;
    let mut lingering = Raw::connect(&relay.ws_url()).await?;
    lingering.ping().await?;

    relay.signal("TERM")?;
    let readyz = format!("{}/readyz", relay.http_url());
    assert_eq!(poll_until(&readyz, 503).await?, "not ready: draining\n");
    assert_eq!(
        Raw::try_connect(&relay.ws_url()).await?.err(),
        Some(503),
        "a new WebSocket during the drain is sent elsewhere"
    );
    let (health, _) = get(&format!("{}/healthz", relay.http_url())).await?;
    assert_eq!(health, 200, "a draining relay is still alive");

    // The last WebSocket goes: the relay stops long before --drain-ms.
    drop(lingering);
    let status = relay.wait_exit().await.context("the relay did not stop once its last WebSocket closed")?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test]
async fn a_relay_whose_postgres_is_unreachable_is_not_ready() -> Result<()> {
    // The machine's PostgreSQL stays up: the relay reaches its database
    // through a proxy, and the test cuts the proxy.
    let database = Database::create().await?;
    let server = tokio::net::lookup_host(database.server()).await?.next().context("no PostgreSQL address")?;
    let proxy = Proxy::start(server).await?;
    let relay = Relay::start_with(&["--database-url", &database.url_via(proxy.addr())]).await?;
    relay.wait_healthy().await?;
    let readyz = format!("{}/readyz", relay.http_url());
    assert_eq!(get(&readyz).await?, (200, "ready\n".into()));

    proxy.offline();
    let reason = poll_until(&readyz, 503).await?;
    assert!(reason.starts_with("not ready: store: "), "{reason:?}");
    assert_eq!(reason.lines().count(), 1, "{reason:?}");

    proxy.online();
    poll_until(&readyz, 200).await?;
    Ok(())
}
