//! Centrifugo's admin endpoints (protocol-extensions.md §8): `{prefix}/admin/init` (is this
//! caller logged in), `{prefix}/admin/auth` (the password buys a token signed with
//! `admin.secret`) and `{prefix}/admin/api` (server API commands in the legacy body format,
//! for holders of a token). Served on the internal port unless `admin.external`.

pub mod token;
mod ui;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq as _;

use crate::config::AdminSettings;
use crate::domain::unix_now;
use crate::node::Node;

/// Failed logins one address may make in [`LOGIN_WINDOW`] before it waits (429).
const LOGIN_FAILURES: u32 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses the throttle remembers at most (it forgets expired ones first).
const LOGIN_ADDRESSES: usize = 10_000;
/// Largest `/admin/auth` body, as Centrifugo.
const AUTH_BODY: usize = 1 << 20;

/// Mounts the admin endpoints under `prefix` (`admin.handler_prefix`).
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    let prefix = prefix.trim_end_matches('/');
    cfg.route(&format!("{prefix}/admin/init"), web::route().to(init));
    cfg.service(web::resource(format!("{prefix}/admin/auth")).app_data(web::PayloadConfig::new(AUTH_BODY)).to(auth));
    cfg.service(
        web::resource(format!("{prefix}/admin/api"))
            .app_data(web::PayloadConfig::new(crate::api::MAX_BODY_BYTES))
            .to(api),
    );
    cfg.route(&format!("{prefix}/admin/tail"), web::post().to(tail));
    ui::configure(cfg, prefix);
}

/// Whether the request carries `Authorization: token <t>` with a valid token (or the admin is
/// insecure).
fn authenticated(req: &HttpRequest, settings: &AdminSettings) -> bool {
    if settings.insecure {
        return true;
    }
    let Some(header) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()) else { return false };
    let mut fields = header.split_whitespace();
    match (fields.next(), fields.next(), fields.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("token") => {
            token::verify(&settings.secret, token, unix_now())
        }
        _ => false,
    }
}

/// `/admin/init`: `{"authenticated","edition","insecure"}` (keys sorted, as Go writes a map).
async fn init(req: HttpRequest, node: web::Data<Arc<Node>>) -> HttpResponse {
    let settings = &node.settings.admin;
    let body = serde_json::json!({
        "authenticated": authenticated(&req, settings),
        "edition": "oss",
        "insecure": settings.insecure,
    });
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

/// `/admin/auth`: POST `password` (form body or query) → `{"token"}`; 400 otherwise, 429 after
/// too many failures from one address.
async fn auth(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    if req.method() != Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let address = req.peer_addr().map(|a| a.ip());
    if address.is_some_and(|ip| node.admin_logins.blocked(ip)) {
        tracing::warn!(address = ?address, "admin login refused: too many failed attempts; wait a minute");
        return HttpResponse::TooManyRequests().body("Too Many Requests\n");
    }
    let settings = &node.settings.admin;
    let password = form_value(&body, "password").or_else(|| form_value(req.query_string().as_bytes(), "password"));
    let matches = password.is_some_and(|p| bool::from(p.as_bytes().ct_eq(settings.password.as_bytes())));
    let token =
        (!settings.password.is_empty() && matches).then(|| token::issue(&settings.secret, unix_now())).flatten();
    match token {
        Some(token) => {
            HttpResponse::Ok().content_type("application/json").body(serde_json::json!({ "token": token }).to_string())
        }
        None => {
            if let Some(ip) = address {
                node.admin_logins.failed(ip);
            }
            tracing::info!(address = ?address, "admin login failed (wrong password, or admin.password / admin.secret not set)");
            HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body("Bad Request\n")
        }
    }
}

fn form_value(encoded: &[u8], key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded).ok()?;
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `/admin/api`: server API commands in the legacy body format, for token holders.
async fn api(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    if req.method() != Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    if !authenticated(&req, &node.settings.admin) {
        return HttpResponse::Unauthorized().finish();
    }
    crate::api::legacy_commands(&node, &body).await
}

/// `/admin/tail`: POST `{"channel"}` → the channel's pushes as JSON lines while the request
/// lasts (the web UI's live tail), for token holders.
async fn tail(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    if !authenticated(&req, &node.settings.admin) {
        return HttpResponse::Unauthorized().finish();
    }
    #[derive(serde::Deserialize)]
    struct Tail {
        channel: String,
    }
    let channel = match serde_json::from_slice::<Tail>(&body) {
        Ok(Tail { channel }) if node.rules.resolve(&channel).is_ok() => channel,
        _ => {
            return HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body("a known channel is needed: {\"channel\": \"name\"}\n")
        }
    };
    crate::client::transport::http::admin_tail(&node, &req, channel)
}

/// Failed admin logins by address, to slow password guessing.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `ip` used up its failures in the current window.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.lock().get(&ip).is_some_and(|(since, count)| since.elapsed() < LOGIN_WINDOW && *count >= LOGIN_FAILURES)
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.lock();
        if failures.len() >= LOGIN_ADDRESSES {
            failures.retain(|_, (since, _)| since.elapsed() < LOGIN_WINDOW);
            if failures.len() >= LOGIN_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= LOGIN_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}
