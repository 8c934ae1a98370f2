//! Centrifugo v6's proxy configuration (protocol-extensions.md §6.1): the proxy object shared by
//! `client.proxy.connect`/`refresh`, the `channel.proxy.*` and `rpc.proxy` defaults and the
//! named entries of the top-level `proxies` list, and the start-up checks on them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration, Settings};

/// One proxy: where requests go and how they are built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxySettings {
    /// `http://…`/`https://…` (HTTP, JSON bodies) or a gRPC address (`grpc://host:port` or
    /// `host:port`).
    pub endpoint: String,
    /// The whole call, waiting for a free slot included. Default 1s.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Headers of the client's opening HTTP request passed on (case-insensitive names).
    pub http_headers: Vec<String>,
    /// Incoming gRPC metadata keys passed on (uni_grpc connections).
    pub grpc_metadata: Vec<String>,
    /// Headers from the client's connect `headers` (header emulation) passed on.
    pub emulated_headers: Vec<String>,
    /// Payloads travel as `b64data` (base64) rather than as JSON `data`.
    pub binary_encoding: bool,
    /// Requests after connect carry the connection's `meta`.
    pub include_connection_meta: bool,
    /// HTTP-only options.
    pub http: ProxyHttpSettings,
    /// gRPC-only options.
    pub grpc: ProxyGrpcSettings,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            timeout: Duration::from_secs(1),
            http_headers: Vec::new(),
            grpc_metadata: Vec::new(),
            emulated_headers: Vec::new(),
            binary_encoding: false,
            include_connection_meta: false,
            http: ProxyHttpSettings::default(),
            grpc: ProxyGrpcSettings::default(),
        }
    }
}

impl ProxySettings {
    /// Whether requests go over gRPC (anything not `http://`/`https://`).
    pub fn is_grpc(&self) -> bool {
        !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://"))
    }
}

/// A map of names to values (`static_headers`, `static_metadata`). Empty, it is written as
/// `null`, so the config schema takes any keys inside it rather than reporting them unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringMap(pub BTreeMap<String, String>);

impl Serialize for StringMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            serializer.serialize_none()
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default()))
    }
}

/// `http.*` of a proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyHttpSettings {
    /// Custom TLS for the backend (refused when enabled: system roots are used for https).
    pub tls: ProxyTls,
    /// Headers added to every request (client headers of the same name win).
    pub static_headers: StringMap,
    /// Backend HTTP statuses turned into client errors or disconnects.
    pub status_to_code_transforms: Vec<StatusTransform>,
}

/// `grpc.*` of a proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyGrpcSettings {
    /// Custom TLS for the backend (refused when enabled).
    pub tls: ProxyTls,
    /// Per-call credentials: this metadata key…
    pub credentials_key: String,
    /// …with this value.
    pub credentials_value: String,
    /// gzip-compress requests.
    pub compression: bool,
    /// Metadata added to every call.
    pub static_metadata: StringMap,
}

/// The TLS object of a proxy; only `enabled` matters to gyre (it refuses custom TLS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyTls {
    /// Custom client TLS (certificates, CA, server name) for this backend.
    pub enabled: bool,
}

/// One `status_to_code_transforms` entry: HTTP `status_code` → an error or a disconnect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusTransform {
    /// The backend's HTTP status.
    pub status_code: u16,
    /// The command error the client gets (when `code` is not 0).
    pub to_error: TransformError,
    /// The disconnect the client gets (when `code` is not 0).
    pub to_disconnect: TransformDisconnect,
}

/// `to_error` of a status transform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformError {
    pub code: u32,
    pub message: String,
    pub temporary: bool,
}

/// `to_disconnect` of a status transform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformDisconnect {
    pub code: u16,
    pub reason: String,
}

/// A proxy switched on by `enabled` (`client.proxy.connect`, `client.proxy.refresh`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToggledProxy {
    /// Use this proxy.
    pub enabled: bool,
    #[serde(flatten)]
    pub proxy: ProxySettings,
}

/// `client.proxy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientProxySettings {
    /// Authenticates connects that carry no token.
    pub connect: ToggledProxy,
    /// Extends connections when they expire (server-side refresh).
    pub refresh: ToggledProxy,
}

/// `channel.proxy`: the proxies namespaces use under the name `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelProxySettings {
    pub subscribe: ProxySettings,
    pub publish: ProxySettings,
    pub sub_refresh: ProxySettings,
    pub subscribe_stream: ProxySettings,
}

/// One entry of the top-level `proxies` list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedProxy {
    /// What `*_proxy_name` options refer to.
    pub name: String,
    #[serde(flatten)]
    pub proxy: ProxySettings,
}

/// An RPC namespace's proxy choice (`rpc.without_namespace`, `rpc.namespaces[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcProxyChoice {
    /// RPCs of this namespace go to a proxy.
    pub proxy_enabled: bool,
    /// Which one: `""`/`default` = `rpc.proxy`, else an entry of `proxies`.
    pub proxy_name: String,
}

/// One entry of `rpc.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcNamespace {
    /// The text before `rpc.namespace_boundary` in method names.
    pub name: String,
    #[serde(flatten)]
    pub choice: RpcProxyChoice,
}

/// A name `*_proxy_name` options may use.
fn valid_name(name: &str) -> bool {
    name.len() >= 2 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a `*_proxy_name` value means: `""` and `default` are the section's default object.
pub fn is_default_name(name: &str) -> bool {
    name.is_empty() || name == "default"
}

/// Start-up checks (Centrifugo's config/validate.go): names, endpoints, timeouts, references.
pub(super) fn validate(s: &Settings, errors: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for (i, named) in s.proxies.iter().enumerate() {
        let at = format!("proxies[{i}]");
        if !valid_name(&named.name) {
            errors.push(format!(
                "{at}.name: {:?} is not a proxy name; use 2 or more of letters, digits, '-', '_', '.'",
                named.name
            ));
        } else if named.name == "default" {
            errors.push(format!("{at}.name: \"default\" is reserved for the channel.proxy / rpc.proxy objects"));
        } else if !seen.insert(named.name.as_str()) {
            errors.push(format!("{at}.name: {:?} is used by another entry; proxy names must be unique", named.name));
        }
        check_proxy(&at, &named.proxy, errors);
    }
    for (key, toggled) in
        [("client.proxy.connect", &s.client.proxy.connect), ("client.proxy.refresh", &s.client.proxy.refresh)]
    {
        if toggled.enabled {
            check_proxy(key, &toggled.proxy, errors);
        }
    }
    let defaults = &s.channel.proxy;
    let mut used_defaults = [false; 4];
    for (label, options) in s.channel.namespace_options() {
        let uses = [
            (options.subscribe_proxy_enabled, &options.subscribe_proxy_name),
            (options.publish_proxy_enabled, &options.publish_proxy_name),
            (options.sub_refresh_proxy_enabled, &options.sub_refresh_proxy_name),
            (options.subscribe_stream_proxy_enabled, &options.subscribe_stream_proxy_name),
        ];
        for (i, (enabled, name)) in uses.into_iter().enumerate() {
            if !enabled {
                continue;
            }
            if is_default_name(name) {
                used_defaults[i] = true;
            } else if !s.proxies.iter().any(|p| &p.name == name) {
                errors.push(format!("{label}: proxy {name:?} is not in the proxies list"));
            }
        }
        let others =
            options.subscribe_proxy_enabled || options.publish_proxy_enabled || options.sub_refresh_proxy_enabled;
        if options.subscribe_stream_proxy_enabled && others {
            errors.push(format!(
                "{label}.subscribe_stream_proxy_enabled: a subscription stream proxy cannot be combined with subscribe, publish or sub_refresh proxies in one namespace"
            ));
        }
        if options.subscribe_stream_proxy_enabled && !is_default_name(&options.subscribe_stream_proxy_name) {
            let named = s.proxies.iter().find(|p| p.name == options.subscribe_stream_proxy_name);
            if named.is_some_and(|p| !p.proxy.is_grpc()) {
                errors.push(format!(
                    "{label}.subscribe_stream_proxy_name: subscription streams need a gRPC proxy endpoint"
                ));
            }
        }
    }
    let channel_defaults = [
        ("channel.proxy.subscribe", &defaults.subscribe),
        ("channel.proxy.publish", &defaults.publish),
        ("channel.proxy.sub_refresh", &defaults.sub_refresh),
        ("channel.proxy.subscribe_stream", &defaults.subscribe_stream),
    ];
    for (used, (key, proxy)) in used_defaults.into_iter().zip(channel_defaults) {
        if used {
            check_proxy(key, proxy, errors);
        }
    }
    if used_defaults[3] && !defaults.subscribe_stream.is_grpc() {
        errors.push(
            "channel.proxy.subscribe_stream.endpoint: subscription streams need a gRPC endpoint (grpc://host:port)"
                .into(),
        );
    }
    let rpc = &s.rpc;
    let choices = std::iter::once(("rpc.without_namespace".to_owned(), &rpc.without_namespace))
        .chain(rpc.namespaces.iter().enumerate().map(|(i, ns)| (format!("rpc.namespaces[{i}]"), &ns.choice)));
    for (label, choice) in choices {
        if choice.proxy_enabled
            && !is_default_name(&choice.proxy_name)
            && !s.proxies.iter().any(|p| p.name == choice.proxy_name)
        {
            errors.push(format!("{label}.proxy_name: proxy {:?} is not in the proxies list", choice.proxy_name));
        }
    }
    for (i, ns) in rpc.namespaces.iter().enumerate() {
        if !valid_name(&ns.name) {
            errors.push(format!("rpc.namespaces[{i}].name: {:?} is not a namespace name", ns.name));
        }
    }
}

/// An endpoint and a timeout every used proxy needs; custom TLS is refused.
fn check_proxy(at: &str, proxy: &ProxySettings, errors: &mut Vec<String>) {
    if proxy.endpoint.trim().is_empty() {
        errors.push(format!("{at}.endpoint: empty; set the backend's URL (http://…, https://… or grpc://host:port)"));
    } else if proxy.is_grpc() && crate::proxy::grpc_target(&proxy.endpoint).is_none() {
        errors.push(format!("{at}.endpoint: {:?} is neither an http(s):// URL nor a gRPC host:port", proxy.endpoint));
    }
    if proxy.timeout.is_zero() {
        errors.push(format!("{at}.timeout: 0; set how long a backend call may take, such as \"1s\""));
    }
    if proxy.http.tls.enabled || proxy.grpc.tls.enabled {
        errors.push(format!(
            "{at}: custom proxy TLS is not supported by gyre; https:// endpoints are verified with the system's roots; remove the tls setting"
        ));
    }
    for transform in &proxy.http.status_to_code_transforms {
        if transform.status_code == 0 || (transform.to_error.code == 0 && transform.to_disconnect.code == 0) {
            errors.push(format!(
                "{at}.http.status_to_code_transforms: each entry needs status_code and a to_error or to_disconnect code"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(change: impl FnOnce(&mut Settings)) -> Vec<String> {
        let mut settings = Settings::default();
        change(&mut settings);
        let mut errors = Vec::new();
        validate(&settings, &mut errors);
        errors
    }

    fn named(name: &str, endpoint: &str) -> NamedProxy {
        NamedProxy { name: name.into(), proxy: ProxySettings { endpoint: endpoint.into(), ..Default::default() } }
    }

    #[test]
    fn proxy_names_are_checked_unique_and_not_default() {
        let errors = errors_of(|s| {
            s.proxies = vec![
                named("a", "http://x"),
                named("default", "http://x"),
                named("ok", "http://x"),
                named("ok", "http://y"),
            ];
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("proxies[0].name"));
        assert!(errors[1].contains("reserved"));
        assert!(errors[2].contains("unique"));
    }

    #[test]
    fn used_proxies_need_an_endpoint_a_timeout_and_no_custom_tls() {
        let errors = errors_of(|s| {
            s.client.proxy.connect.enabled = true;
            s.client.proxy.refresh.enabled = true;
            s.client.proxy.refresh.proxy.endpoint = "not a url".into();
            s.client.proxy.refresh.proxy.timeout = Duration::ZERO;
            s.channel.without_namespace.publish_proxy_enabled = true;
            s.channel.proxy.publish.endpoint = "grpc://127.0.0.1:9000".into();
            s.channel.proxy.publish.http.tls.enabled = true;
        });
        assert!(errors.iter().any(|e| e.starts_with("client.proxy.connect.endpoint: empty")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("client.proxy.refresh.endpoint")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("client.proxy.refresh.timeout")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("channel.proxy.publish: custom proxy TLS")), "{errors:?}");
        assert_eq!(errors.len(), 4, "{errors:?}");
        // Unused defaults are not checked.
        assert!(errors_of(|s| s.channel.proxy.subscribe.endpoint = "nonsense".into()).is_empty());
    }

    #[test]
    fn references_to_missing_proxies_and_stream_proxies_are_refused() {
        let errors = errors_of(|s| {
            s.channel.without_namespace.subscribe_proxy_enabled = true;
            s.channel.without_namespace.subscribe_proxy_name = "missing".into();
            s.channel.without_namespace.subscribe_stream_proxy_enabled = true;
            s.channel.without_namespace.subscribe_stream_proxy_name = "streams".into();
            s.proxies = vec![named("streams", "grpc://127.0.0.1:1")];
            s.rpc.namespaces = vec![RpcNamespace {
                name: "ns".into(),
                choice: RpcProxyChoice { proxy_enabled: true, proxy_name: "gone".into() },
            }];
        });
        assert!(errors.iter().any(|e| e.contains("proxy \"missing\" is not in the proxies list")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("cannot be combined")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("rpc.namespaces[0].proxy_name")), "{errors:?}");
    }

    #[test]
    fn grpc_endpoints_are_recognised() {
        assert!(ProxySettings { endpoint: "grpc://localhost:9000".into(), ..Default::default() }.is_grpc());
        assert!(!ProxySettings { endpoint: "https://a/b".into(), ..Default::default() }.is_grpc());
        assert_eq!(crate::proxy::grpc_target("grpc://localhost:9000").as_deref(), Some("http://localhost:9000"));
        assert_eq!(crate::proxy::grpc_target("127.0.0.1:1").as_deref(), Some("http://127.0.0.1:1"));
        assert!(crate::proxy::grpc_target("localhost").is_none());
    }
}
