//! The Centrifugo-compatible server HTTP API (protocol-server.md §1): `POST {prefix}/{method}`
//! with API-key auth, Centrifugo's request/response JSON and error modes. Each method is one
//! handler in [`methods`]; this module does routing, auth, body decoding and the envelope.

mod auth;
mod batch;
mod error;
mod glob;
mod go_json;
pub mod grpc;

/// Compiles a `channels` glob pattern (empty = match all; malformed = match nothing).
pub fn compile_glob(pattern: &str) -> Option<regex::Regex> {
    if pattern.is_empty() {
        return None;
    }
    glob::compile(pattern).or_else(|| regex::Regex::new("^$^").ok())
}
mod methods;
pub mod openapi;
mod publish;
mod queries;
mod users;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::ApiError;
pub use methods::decode_request;

use crate::metrics::METRICS;
use crate::node::Node;
use crate::protocol::reply;

/// Largest accepted API body; bigger bodies get 413 before they are read whole.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Mounts the API under `prefix` (`http_api.handler_prefix`).
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    let prefix = prefix.trim_end_matches('/');
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES)).service(web::resource(prefix.to_owned()).to(legacy));
    // A static route per method: matching a path with a `{method}` segment costs a regex run
    // per request, a few per cent of a publish.
    for &method in methods::KNOWN.iter().chain(&["batch"]) {
        cfg.service(web::resource(format!("{prefix}/{method}")).to(
            move |req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>| dispatch(req, method, body, node),
        ));
    }
    cfg.service(web::resource(format!("{prefix}/{{method}}")).to(unknown_method));
}

/// Any other `{prefix}/{method}`: 404 with Go's body, whatever the HTTP method or key.
async fn unknown_method() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("404 page not found\n")
}

/// Runs a legacy-format body (one or more `{"id","method","params"}` objects) without any key
/// check: the admin API's `/admin/api`, whose caller the admin token vouched for.
pub(crate) async fn legacy_commands(node: &Arc<Node>, body: &[u8]) -> HttpResponse {
    batch::legacy(node, body).await
}

/// The legacy `POST {prefix}` endpoint (503 while draining, as Centrifugo).
async fn legacy(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    if !auth::authorized(&req, &node.settings.http_api) {
        return HttpResponse::Unauthorized().finish();
    }
    if node.is_draining() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    batch::legacy(&node, &body).await
}

/// Runs one API call: non-POST 405, bad key 401 (in Centrifugo's order, after the unknown
/// method's 404).
async fn dispatch(
    req: HttpRequest,
    method: &'static str,
    body: web::Bytes,
    node: web::Data<Arc<Node>>,
) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    if !auth::authorized(&req, &node.settings.http_api) {
        return HttpResponse::Unauthorized().finish();
    }
    let transport_errors = node.settings.http_api.error_mode == "transport"
        || req.headers().get("X-Centrifugo-Error-Mode").is_some_and(|v| v.as_bytes() == b"transport");
    if method == "batch" {
        return match decode(&body) {
            Ok(request) => batch::batch(&node, request).await,
            Err(MalformedBody) => bad_request(),
        };
    }
    if method == "broadcast" {
        return broadcast(&node, &body, transport_errors);
    }
    let started = std::time::Instant::now();
    let (response, error) = match methods::execute(method, &body, &node).await {
        Some(Ok(outcome)) => {
            let error = outcome.as_ref().err().map(|e| e.code().to_string());
            (respond(outcome, transport_errors), error)
        }
        Some(Err(MalformedBody)) => (bad_request(), Some("unmarshal".to_owned())),
        None => (HttpResponse::NotFound().finish(), None),
    };
    METRICS.api_call(method, started.elapsed().as_secs_f64(), error.as_deref());
    response
}

/// `broadcast`: its body is streamed as the channels are published to (its metrics are recorded
/// when the stream ends); errors of the request itself are answered at once.
fn broadcast(node: &Arc<Node>, body: &[u8], transport_errors: bool) -> HttpResponse {
    let started = std::time::Instant::now();
    let error = match decode(body).map(|request| publish::broadcast_streamed(Arc::clone(node), request)) {
        Ok(Ok(body)) => return HttpResponse::Ok().content_type("application/json").streaming(body),
        Ok(Err(error)) => error,
        Err(MalformedBody) => {
            METRICS.api_call("broadcast", started.elapsed().as_secs_f64(), Some("unmarshal"));
            return bad_request();
        }
    };
    METRICS.api_call("broadcast", started.elapsed().as_secs_f64(), Some(&error.code().to_string()));
    respond(Err(error), transport_errors)
}

/// A body that is not valid JSON for the method (answered 400).
pub(super) struct MalformedBody;

/// Decodes a request body as Go's json does: `null` is an all-default request, and keys match
/// fields case-insensitively.
fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, MalformedBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MalformedBody);
    }
    go_json::from_slice::<Option<T>>(body).map(Option::unwrap_or_default).map_err(|error| {
        tracing::debug!(%error, "API body is not valid JSON for this method");
        MalformedBody
    })
}

/// The response when a result cannot be JSON: Go's `http.Error(w, "Internal Server Error", 500)`.
pub(super) fn unencodable() -> HttpResponse {
    HttpResponse::InternalServerError().content_type("text/plain; charset=utf-8").body("Internal Server Error\n")
}

fn bad_request() -> HttpResponse {
    HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body("Bad Request\n")
}

/// The response envelope: `{"result":...}` or `{"error":...}` in a 200, or — in transport error
/// mode — the bare error object with the mapped HTTP status.
fn respond(outcome: methods::Outcome, transport_errors: bool) -> HttpResponse {
    match outcome {
        Err(ApiError::Unencodable) => unencodable(),
        Ok(result) => raw_json(StatusCode::OK, format!("{{\"result\":{result}}}")),
        Err(error) if transport_errors => json(error.http_status(), &error.to_wire()),
        Err(error) => raw_json(StatusCode::OK, format!("{{\"error\":{}}}", reply::to_json(&error.to_wire()))),
    }
}

fn raw_json(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(body)
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(crate::protocol::reply::to_json(body))
}
