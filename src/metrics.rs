//! Prometheus metrics with Centrifugo's names and labels (`centrifugo_*`, protocol-server.md
//! §5.2), so existing dashboards and alerts keep working. `channel_namespace` is always `""`, as
//! in Centrifugo OSS.
//!
//! Hot paths use pre-resolved children (no label hashing per delivery), and fan-out counts a
//! whole publication's deliveries with one `inc_by`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::node::VERSION;

const NS: &str = "centrifugo";
const TRANSPORT: &str = "websocket";

/// A connection's metric labels, resolved once and shared by every connection that has them
/// (a connection keeps a pointer, not four strings).
#[derive(Debug)]
pub struct ConnectionLabels {
    /// The `client_name` label (the SDK's name).
    pub client_name: String,
    inflight: IntGauge,
}

/// One proxy's metrics, resolved once.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    /// `centrifugo_proxy_duration_seconds_histogram`.
    pub duration: prometheus::Histogram,
    /// `centrifugo_proxy_errors`.
    pub errors: IntCounter,
    /// `centrifugo_proxy_inflight_requests`.
    pub inflight: IntGauge,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Every metric gyre exports.
pub struct Metrics {
    registry: Registry,
    /// `centrifugo_node_num_clients`.
    pub num_clients: IntGauge,
    /// `centrifugo_node_num_users`.
    pub num_users: IntGauge,
    /// `centrifugo_node_num_subscriptions`.
    pub num_subscriptions: IntGauge,
    /// `centrifugo_node_num_channels`.
    pub num_channels: IntGauge,
    /// `centrifugo_node_num_nodes`.
    pub num_nodes: IntGauge,
    connections_accepted: IntCounterVec,
    connections_inflight: IntGaugeVec,
    subscriptions_accepted: IntCounterVec,
    reply_errors: IntCounterVec,
    server_disconnects: IntCounterVec,
    close_count: IntCounterVec,
    recover: IntCounterVec,
    messages_sent: IntCounterVec,
    messages_sent_size: IntCounterVec,
    messages_received: IntCounterVec,
    messages_received_size: IntCounterVec,
    command_duration: HistogramVec,
    api_duration: HistogramVec,
    api_errors: IntCounterVec,
    broker_sent: IntCounterVec,
    broker_received: IntCounterVec,
    broker_publish_errors: IntCounterVec,
    broker_reconnects: IntCounter,
    surveys_partial: IntCounter,
    proxy_duration: HistogramVec,
    proxy_errors: IntCounterVec,
    proxy_inflight: IntGaugeVec,
    /// Labels of connections seen so far, shared by every connection that has them.
    connection_labels: Mutex<HashMap<[String; 4], Arc<ConnectionLabels>>>,
    /// Pre-resolved `transport_messages_sent{frame_type="push_publication"}`.
    pub sent_publications: IntCounter,
    /// Pre-resolved `transport_messages_sent_size{frame_type="push_publication"}`.
    pub sent_publications_size: IntCounter,
}

fn counter(registry: &Registry, subsystem: &str, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help).namespace(NS).subsystem(subsystem), labels)
        .expect("static metric definition is valid");
    registry.register(Box::new(vec.clone())).expect("metric names are unique");
    vec
}

fn gauge(registry: &Registry, subsystem: &str, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::with_opts(Opts::new(name, help).namespace(NS).subsystem(subsystem))
        .expect("static metric definition is valid");
    registry.register(Box::new(gauge.clone())).expect("metric names are unique");
    gauge
}

fn gauge_vec(registry: &Registry, subsystem: &str, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help).namespace(NS).subsystem(subsystem), labels)
        .expect("static metric definition is valid");
    registry.register(Box::new(vec.clone())).expect("metric names are unique");
    vec
}

fn histogram(registry: &Registry, subsystem: &str, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let vec = HistogramVec::new(HistogramOpts::new(name, help).namespace(NS).subsystem(subsystem), labels)
        .expect("static metric definition is valid");
    registry.register(Box::new(vec.clone())).expect("metric names are unique");
    vec
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        }
        let build = gauge_vec(&r, "node", "build", "Node build info.", &["version"]);
        build.with_label_values(&[&format!("{VERSION} OSS")]).set(1);
        let conn_labels = ["transport", "accept_protocol", "client_name", "client_version"];
        let transport_labels = ["transport", "frame_type", "channel_namespace"];
        let messages_sent = counter(&r, "transport", "messages_sent", "Messages sent to clients.", &transport_labels);
        let messages_sent_size =
            counter(&r, "transport", "messages_sent_size", "Bytes sent to clients.", &transport_labels);
        Self {
            num_clients: gauge(&r, "node", "num_clients", "Connections on this node."),
            num_users: gauge(&r, "node", "num_users", "Unique users on this node."),
            num_subscriptions: gauge(&r, "node", "num_subscriptions", "Subscriptions on this node."),
            num_channels: gauge(&r, "node", "num_channels", "Channels with subscribers on this node."),
            num_nodes: gauge(&r, "node", "num_nodes", "Nodes in the cluster."),
            connections_accepted: counter(&r, "client", "connections_accepted", "Accepted connections.", &conn_labels),
            connections_inflight: gauge_vec(&r, "client", "connections_inflight", "Open connections.", &conn_labels),
            subscriptions_accepted: counter(
                &r,
                "client",
                "subscriptions_accepted",
                "Accepted subscriptions.",
                &["client_name", "channel_namespace"],
            ),
            reply_errors: counter(
                &r,
                "client",
                "num_reply_errors",
                "Error replies to client commands.",
                &["method", "code", "channel_namespace"],
            ),
            server_disconnects: counter(&r, "client", "num_server_disconnects", "Server-side disconnects.", &["code"]),
            close_count: counter(&r, "transport", "outgoing_close_count", "Close frames sent.", &["transport", "code"]),
            recover: counter(
                &r,
                "client",
                "recover",
                "Recovery attempts.",
                &["recovered", "channel_namespace", "has_recovered_publications"],
            ),
            connection_labels: Mutex::default(),
            sent_publications: messages_sent.with_label_values(&[TRANSPORT, "push_publication", ""]),
            sent_publications_size: messages_sent_size.with_label_values(&[TRANSPORT, "push_publication", ""]),
            messages_sent,
            messages_sent_size,
            messages_received: counter(
                &r,
                "transport",
                "messages_received",
                "Messages received from clients.",
                &transport_labels,
            ),
            messages_received_size: counter(
                &r,
                "transport",
                "messages_received_size",
                "Bytes received from clients.",
                &transport_labels,
            ),
            command_duration: histogram(
                &r,
                "client",
                "command_duration_seconds_histogram",
                "Client command duration.",
                &["method", "channel_namespace"],
            ),
            api_duration: histogram(
                &r,
                "api",
                "command_duration_seconds_histogram",
                "Server API command duration.",
                &["protocol", "method"],
            ),
            api_errors: counter(
                &r,
                "api",
                "command_errors_total",
                "Server API errors.",
                &["protocol", "method", "error"],
            ),
            broker_sent: counter(
                &r,
                "node",
                "messages_sent_count",
                "Messages sent to the broker.",
                &["type", "channel_namespace"],
            ),
            broker_received: counter(
                &r,
                "node",
                "messages_received_count",
                "Messages received from the broker.",
                &["type", "channel_namespace"],
            ),
            broker_publish_errors: {
                let vec = IntCounterVec::new(
                    Opts::new("gyre_broker_publish_errors_total", "Publishes to NATS that failed."),
                    &["type"],
                )
                .expect("static metric definition is valid");
                r.register(Box::new(vec.clone())).expect("metric names are unique");
                vec
            },
            broker_reconnects: {
                let c =
                    IntCounter::new("gyre_broker_reconnects_total", "NATS connections re-established after a loss.")
                        .expect("static metric definition is valid");
                r.register(Box::new(c.clone())).expect("metric names are unique");
                c
            },
            surveys_partial: {
                let c = IntCounter::new(
                    "gyre_cluster_surveys_partial_total",
                    "Cluster surveys (presence, presence stats, channels) that ended at their timeout without every live node's answer.",
                )
                .expect("static metric definition is valid");
                r.register(Box::new(c.clone())).expect("metric names are unique");
                c
            },
            proxy_duration: histogram(
                &r,
                "proxy",
                "duration_seconds_histogram",
                "Histogram of duration of proxy call.",
                &["protocol", "type", "name"],
            ),
            proxy_errors: counter(&r, "proxy", "errors", "Proxy call error count.", &["protocol", "type", "name"]),
            proxy_inflight: gauge_vec(
                &r,
                "proxy",
                "inflight_requests",
                "Number of inflight proxy requests.",
                &["protocol", "type", "name"],
            ),
            registry: r,
        }
    }

    /// The metrics of one proxy (`protocol` http/grpc, `type` connect/subscribe/…, `name`).
    pub fn proxy(&self, protocol: &str, kind: &str, name: &str) -> ProxyMetrics {
        let labels = [protocol, kind, name];
        ProxyMetrics {
            duration: self.proxy_duration.with_label_values(&labels),
            errors: self.proxy_errors.with_label_values(&labels),
            inflight: self.proxy_inflight.with_label_values(&labels),
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// A connection was accepted (`connect` succeeded); returns the labels to release it with.
    pub fn connection_accepted(
        &self,
        transport: &str,
        encoding: &str,
        client_name: &str,
        client_version: &str,
    ) -> Arc<ConnectionLabels> {
        let key = [transport.to_owned(), encoding.to_owned(), label(client_name), label(client_version)];
        let refs = key.each_ref().map(String::as_str);
        self.connections_accepted.with_label_values(&refs).inc();
        let inflight = self.connections_inflight.with_label_values(&refs);
        let mut known = self.connection_labels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let labels = known
            .entry(key)
            .or_insert_with_key(|key| Arc::new(ConnectionLabels { client_name: key[2].clone(), inflight }));
        labels.inflight.inc();
        labels.clone()
    }

    /// A connection accepted earlier ended.
    pub fn connection_ended(&self, labels: &ConnectionLabels) {
        labels.inflight.dec();
    }

    /// A subscription was accepted.
    pub fn subscription_accepted(&self, client_name: &str) {
        self.subscriptions_accepted.with_label_values(&[&label(client_name), ""]).inc();
    }

    /// An error reply to a client command.
    pub fn reply_error(&self, method: &str, code: u32) {
        self.reply_errors.with_label_values(&[method, &code.to_string(), ""]).inc();
    }

    /// The server closed a connection with `code`.
    pub fn server_disconnect(&self, code: u16) {
        let code = code.to_string();
        self.server_disconnects.with_label_values(&[&code]).inc();
        self.close_count.with_label_values(&[TRANSPORT, &code]).inc();
    }

    /// A recovery attempt.
    pub fn recovery(&self, recovered: bool, publications: usize) {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        self.recover.with_label_values(&[yes_no(recovered), "", yes_no(publications > 0)]).inc();
    }

    /// A frame (reply, push or ping) written to a client.
    pub fn sent(&self, frame_type: &str, bytes: usize) {
        self.messages_sent.with_label_values(&[TRANSPORT, frame_type, ""]).inc();
        self.messages_sent_size.with_label_values(&[TRANSPORT, frame_type, ""]).inc_by(bytes as u64);
    }

    /// `count` deliveries of one frame type from a channel fan-out, `bytes` in all.
    pub fn fanned_out(&self, frame_type: &str, count: usize, bytes: usize) {
        if frame_type == "push_publication" {
            self.sent_publications.inc_by(count as u64);
            self.sent_publications_size.inc_by(bytes as u64);
        } else {
            self.messages_sent.with_label_values(&[TRANSPORT, frame_type, ""]).inc_by(count as u64);
            self.messages_sent_size.with_label_values(&[TRANSPORT, frame_type, ""]).inc_by(bytes as u64);
        }
    }

    /// A command (or pong) received from a client.
    pub fn received(&self, frame_type: &str, bytes: usize) {
        self.messages_received.with_label_values(&[TRANSPORT, frame_type, ""]).inc();
        self.messages_received_size.with_label_values(&[TRANSPORT, frame_type, ""]).inc_by(bytes as u64);
    }

    /// How long a client command took.
    pub fn command_duration(&self, method: &str, seconds: f64) {
        self.command_duration.with_label_values(&[method, ""]).observe(seconds);
    }

    /// A message of `kind` (publication, join, leave, control) went to NATS.
    pub fn broker_sent(&self, kind: &str) {
        self.broker_sent.with_label_values(&[kind, ""]).inc();
    }

    /// A message of `kind` arrived from NATS.
    pub fn broker_received(&self, kind: &str) {
        self.broker_received.with_label_values(&[kind, ""]).inc();
    }

    /// A publish to NATS failed.
    pub fn broker_publish_error(&self, kind: &str) {
        self.broker_publish_errors.with_label_values(&[kind]).inc();
    }

    /// The NATS connection came back after a loss.
    pub fn broker_reconnected(&self) {
        self.broker_reconnects.inc();
    }

    /// A survey answered with fewer nodes than it asked.
    pub fn survey_partial(&self) {
        self.surveys_partial.inc();
    }

    /// One server HTTP API call.
    pub fn api_call(&self, method: &str, seconds: f64, error: Option<&str>) {
        self.api_call_via("http", method, seconds, error);
    }

    /// One server API call over `protocol`: `http` or `grpc`, Centrifugo's label values.
    pub fn api_call_via(&self, protocol: &str, method: &str, seconds: f64, error: Option<&str>) {
        self.api_duration.with_label_values(&[protocol, method]).observe(seconds);
        if let Some(error) = error {
            self.api_errors.with_label_values(&[protocol, method, error]).inc();
        }
    }
}

/// Client-provided label values are bounded: at most 16 characters of `[A-Za-z0-9._-]`.
fn label(value: &str) -> String {
    value.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_centrifugo_names() {
        METRICS.reply_error("subscribe", 103);
        METRICS.fanned_out("push_publication", 3, 10);
        let text = METRICS.render();
        assert!(text
            .contains("centrifugo_client_num_reply_errors{channel_namespace=\"\",code=\"103\",method=\"subscribe\"}"));
        assert!(text.contains("centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"push_publication\",transport=\"websocket\"}"));
        assert!(text.contains("centrifugo_node_build{version="));
    }

    #[test]
    fn client_supplied_labels_are_bounded() {
        assert_eq!(label("js"), "js");
        assert_eq!(label("a very long name with spaces!!"), "averylongnamewit");
    }
}
