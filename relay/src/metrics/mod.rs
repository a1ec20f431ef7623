//! What the relay counts for Prometheus, and the `/metrics` page that
//! shows it in the text exposition format.
//!
//! One [`Metrics`] per relay, in `AppState`, owns the registry and a
//! handle to every metric. The parts that count reach in here (the
//! WebSocket connections, the cluster link, the rate limits, the HTTP
//! layer in `server`); this module reaches into none of them. The store
//! does not know it either: its writer reports each commit to a
//! [`CommitObserver`], which `Metrics` is.
//!
//! # Who may read it
//!
//! The page holds no message text and no identities, but it does reveal
//! traffic: how many visitors and agents are connected, how many messages
//! a second, which routes are asked. Anyone who reaches it learns how busy
//! the service is. Serve it apart with `--metrics-listen` on a private
//! address (loopback, or the network the Prometheus server is on); without
//! that flag it is on the main listener, open to whoever reaches the relay.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::store::{Commit, CommitObserver};

/// What the page is served as: OpenMetrics text, which Prometheus reads.
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Visitor,
    Agent,
}

/// A limit that refused something (see `crate::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// WebSocket upgrades per address.
    Connections,
    /// Login attempts per address.
    Logins,
    /// Login attempts per account.
    Accounts,
    /// Frames per connection.
    Frames,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    role: &'static str,
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/api/agents/{id}`), never the raw path, so
    /// the number of series stays that of the routes.
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// The relay's metrics; every name starts with `kefu_`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<ConnectionLabels, Gauge>,
    messages_stored: Counter,
    commit_seconds: Histogram,
    batch_messages: Histogram,
    too_slow: Counter,
    attachments_stored: Counter,
    attachment_bytes_stored: Counter,
    redis_link_up: Gauge,
    redis_publish_seconds: Histogram,
    http_requests: Family<RequestLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
}

impl Metrics {
    /// Every metric at zero. The Redis ones are registered only on a node
    /// of several (`clustered`): on a single node "link down" would be a
    /// false alarm.
    pub fn new(clustered: bool) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("kefu"),
            connections: Family::default(),
            messages_stored: Counter::default(),
            // 0.5 ms to about 4 s: an fsync on a fast disk to a stuck one.
            commit_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 14)),
            // 1 to 256: `MAX_BATCH` of the writer.
            batch_messages: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            too_slow: Counter::default(),
            attachments_stored: Counter::default(),
            attachment_bytes_stored: Counter::default(),
            redis_link_up: Gauge::default(),
            redis_publish_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            http_requests: Family::default(),
            rate_limited: Family::default(),
        };
        // Both roles from the start, so a dashboard sees 0 rather than no
        // series before the first connection.
        for role in [Role::Visitor, Role::Agent] {
            let _ = metrics.connections.get_or_create(&ConnectionLabels::websocket(role));
        }
        let registry = &mut metrics.registry;
        registry.register("connections", "Open client connections, by role and transport", metrics.connections.clone());
        registry.register(
            "messages_stored",
            "Messages stored for the first time (resends excluded)",
            metrics.messages_stored.clone(),
        );
        registry.register_with_unit(
            "store_commit",
            "Time to store one batch of messages, from BEGIN to COMMIT",
            Unit::Seconds,
            metrics.commit_seconds.clone(),
        );
        registry.register(
            "store_batch_messages",
            "Messages per committed batch, resends included",
            metrics.batch_messages.clone(),
        );
        registry.register(
            "too_slow_disconnects",
            "Connections closed because their outbound queue overflowed",
            metrics.too_slow.clone(),
        );
        registry.register(
            "attachments_stored",
            "Uploads kept (their bytes stored and their row written)",
            metrics.attachments_stored.clone(),
        );
        registry.register(
            "attachment_bytes_stored",
            "Bytes of the uploads kept",
            metrics.attachment_bytes_stored.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests and frames refused by a rate limit, by limit",
            metrics.rate_limited.clone(),
        );
        if clustered {
            registry.register(
                "redis_link_up",
                "1 while this node's fan-out link to Redis is up",
                metrics.redis_link_up.clone(),
            );
            registry.register_with_unit(
                "redis_publish",
                "Time to publish one pipeline of frames to Redis",
                Unit::Seconds,
                metrics.redis_publish_seconds.clone(),
            );
        }
        metrics
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn connection_opened(&self, role: Role) -> OpenConnection {
        let gauge = self.connections.get_or_create_owned(&ConnectionLabels::websocket(role));
        gauge.inc();
        OpenConnection(gauge)
    }

    /// A connection was closed because it could not keep up.
    pub fn too_slow_disconnect(&self) {
        self.too_slow.inc();
    }

    /// An upload of `bytes` was kept.
    pub fn attachment_stored(&self, bytes: u64) {
        self.attachments_stored.inc();
        self.attachment_bytes_stored.inc_by(bytes);
    }

    /// The Redis link went up or down.
    pub fn redis_link(&self, up: bool) {
        self.redis_link_up.set(i64::from(up));
    }

    /// One pipeline of publishes reached Redis in `took`.
    pub fn redis_published(&self, took: Duration) {
        self.redis_publish_seconds.observe(took.as_secs_f64());
    }

    /// The counter of `limit`'s refusals, for the limit to keep.
    pub fn refusals(&self, limit: Limit) -> Counter {
        let limit = match limit {
            Limit::Connections => "connections",
            Limit::Logins => "logins",
            Limit::Accounts => "accounts",
            Limit::Frames => "frames",
        };
        self.rate_limited.get_or_create_owned(&LimitLabels { limit })
    }

    /// The page: every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut page = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut page, &self.registry);
        page
    }
}

impl ConnectionLabels {
    fn websocket(role: Role) -> ConnectionLabels {
        let role = match role {
            Role::Visitor => "visitor",
            Role::Agent => "agent",
        };
        ConnectionLabels { role, transport: "websocket" }
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, commit: Commit) {
        self.messages_stored.inc_by(commit.stored as u64);
        self.commit_seconds.observe(commit.took.as_secs_f64());
        self.batch_messages.observe(commit.requests as f64);
    }
}

/// An open connection, counted until dropped (however its task ends).
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics` over `metrics`, for the main listener or the one of
/// `--metrics-listen`.
pub fn routes<S: Clone + Send + Sync + 'static>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new().route("/metrics", get(page)).with_state(metrics)
}

async fn page(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], metrics.encode()).into_response()
}

/// Middleware that counts every answered request by its route's pattern
/// and status. Requests that match no route count as `unmatched`.
pub async fn count_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    let labels = RequestLabels { route, status: response.status().as_u16() };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISITORS: &str = "kefu_connections{role=\"visitor\",transport=\"websocket\"}";

    #[test]
    fn a_connection_counts_until_its_guard_is_dropped() {
        let metrics = Metrics::new(false);
        assert!(metrics.encode().contains(&format!("{VISITORS} 0\n")), "{}", metrics.encode());
        let open = metrics.connection_opened(Role::Visitor);
        assert!(metrics.encode().contains(&format!("{VISITORS} 1\n")));
        drop(open);
        assert!(metrics.encode().contains(&format!("{VISITORS} 0\n")));
    }

    #[test]
    fn a_commit_counts_its_fresh_messages_and_its_size() {
        let metrics = Metrics::new(false);
        metrics.committed(Commit { requests: 4, stored: 3, took: Duration::from_millis(2) });
        let page = metrics.encode();
        assert!(page.contains("kefu_messages_stored_total 3\n"), "{page}");
        assert!(page.contains("kefu_store_batch_messages_count 1\n"), "{page}");
        assert!(page.contains("kefu_store_commit_seconds_count 1\n"), "{page}");
    }

    #[test]
    fn redis_metrics_are_shown_only_on_a_node_of_several() {
        assert!(!Metrics::new(false).encode().contains("kefu_redis"));
        let clustered = Metrics::new(true);
        clustered.redis_link(true);
        assert!(clustered.encode().contains("kefu_redis_link_up 1\n"), "{}", clustered.encode());
    }
}
