//! The relay as an operator runs it behind a load balancer: `/readyz`,
//! the drain after SIGTERM, and the Prometheus metrics.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kefu_sdk::{Body, Client};
use kefu_tests::cluster::{RedisServer, redis_prefix};
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
async fn a_node_of_several_is_not_ready_while_its_redis_link_is_down() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let relay = Relay::start_with(&["--redis-url", &redis.url(), "--redis-prefix", &redis_prefix()]).await?;
    relay.wait_healthy().await?;
    let readyz = format!("{}/readyz", relay.http_url());
    let metrics = format!("{}/metrics", relay.http_url());
    // The link is made in the background after the start.
    poll_until(&readyz, 200).await?;
    assert_eq!(read_metric(&metrics, "kefu_redis_link_up").await?, 1.0);

    redis.stop().await?;
    assert_eq!(poll_until(&readyz, 503).await?, "not ready: the Redis link to the other nodes is down\n");
    assert_eq!(read_metric(&metrics, "kefu_redis_link_up").await?, 0.0);

    redis.restart().await?;
    poll_until(&readyz, 200).await?;
    Ok(())
}

/// The value of one series (`name{labels}` as the page writes it) on a
/// metrics page; `None` when the page has no such series.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The series' value now, read from `url`; 0 when it is not there yet.
async fn read_metric(url: &str, series: &str) -> Result<f64> {
    let (status, page) = get(url).await?;
    if status != 200 {
        bail!("{url} answered {status}: {page}");
    }
    Ok(sample(&page, series).unwrap_or(0.0))
}

const STORED: &str = "kefu_messages_stored_total";
const VISITORS: &str = "kefu_connections{role=\"visitor\",transport=\"websocket\"}";

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

#[tokio::test]
async fn metrics_count_a_visitor_while_connected_and_each_message_it_stores() -> Result<()> {
    let relay = Relay::start().await?;
    relay.wait_healthy().await?;
    let metrics = format!("{}/metrics", relay.http_url());
    let page = get(&metrics).await?.1;
    assert_eq!(sample(&page, STORED), Some(0.0), "{page}");
    assert_eq!(sample(&page, VISITORS), Some(0.0), "{page}");

    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    for n in 1..=3 {
        // Accepted once committed: the commit is counted before the answer.
        visitor.send(conversation, Body::Text(format!("message {n}"))).await?;
    }
    assert_eq!(read_metric(&metrics, STORED).await?, 3.0);
    assert_eq!(read_metric(&metrics, VISITORS).await?, 1.0);

    visitor.stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while read_metric(&metrics, VISITORS).await? != 0.0 {
        if tokio::time::Instant::now() >= deadline {
            bail!("the visitor still counts as connected {PATIENCE:?} after it stopped");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read_metric(&metrics, STORED).await?, 3.0, "a counter does not go back");
    Ok(())
}

#[tokio::test]
async fn metrics_count_http_requests_by_route() -> Result<()> {
    let relay = Relay::start().await?;
    relay.wait_healthy().await?;
    let metrics = format!("{}/metrics", relay.http_url());
    let healthz = "kefu_http_requests_total{route=\"/healthz\",status=\"200\"}";
    let before = read_metric(&metrics, healthz).await?;
    assert_eq!(get(&format!("{}/healthz", relay.http_url())).await?.0, 200);
    assert_eq!(read_metric(&metrics, healthz).await?, before + 1.0);

    // A route with a parameter counts under its pattern, not its path.
    let widget = "kefu_http_requests_total{route=\"/api/widget/{site_key}\",status=\"200\"}";
    assert_eq!(get(&format!("{}/api/widget/demo", relay.http_url())).await?.0, 200);
    let page = get(&metrics).await?.1;
    assert_eq!(sample(&page, widget), Some(1.0), "{page}");
    assert!(!page.contains("route=\"/api/widget/demo\""), "{page}");
    Ok(())
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_and_the_main_listener_has_none() -> Result<()> {
    // A port that was free a moment ago: the relay binds it itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let apart = format!("127.0.0.1:{port}");
    let relay = Relay::start_with(&["--metrics-listen", &apart]).await?;
    relay.wait_healthy().await?;
    let (status, page) = get(&format!("http://{apart}/metrics")).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(sample(&page, VISITORS), Some(0.0), "{page}");
    assert_eq!(get(&format!("{}/metrics", relay.http_url())).await?.0, 404);
    Ok(())
}
