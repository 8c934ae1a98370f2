//! The Centrifugo-compatible server HTTP API (protocol-server.md §1): `POST {prefix}/{method}`
//! with API-key auth, Centrifugo's request/response JSON and error modes. Each method is one
//! handler in [`methods`]; this module does routing, auth, body decoding and the envelope.

mod auth;
mod error;
mod methods;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::ApiError;

use crate::node::Node;

/// Largest accepted API body; bigger bodies get 413 before they are read whole.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Mounts the API under `prefix` (`http_api.handler_prefix`).
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    let prefix = prefix.trim_end_matches('/');
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(web::resource(format!("{prefix}/{{method}}")).to(dispatch));
}

/// Routes one API call: unknown method 404, non-POST 405, bad key 401 (in Centrifugo's order).
async fn dispatch(
    req: HttpRequest,
    method: web::Path<String>,
    body: web::Bytes,
    node: web::Data<Arc<Node>>,
) -> HttpResponse {
    let method = method.into_inner();
    if !methods::KNOWN.contains(&method.as_str()) {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("404 page not found\n");
    }
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    if !auth::authorized(&req, &node.settings.http_api) {
        return HttpResponse::Unauthorized().finish();
    }
    let transport_errors = node.settings.http_api.error_mode == "transport"
        || req
            .headers()
            .get("X-Centrifugo-Error-Mode")
            .is_some_and(|v| v.as_bytes() == b"transport");
    methods::call(&method, &body, &node, transport_errors).await
}

/// A body that is not valid JSON for the method (answered 400).
struct MalformedBody;

/// Decodes a request body; `null` is an all-default request, as with Go's json.
fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, MalformedBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MalformedBody);
    }
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|error| {
            tracing::debug!(%error, "API body is not valid JSON for this method");
            MalformedBody
        })
}

fn bad_request() -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body("Bad Request\n")
}

/// The response envelope: `{"result":...}` or `{"error":...}` in a 200, or — in transport error
/// mode — the bare error object with the mapped HTTP status.
fn respond<T: Serialize>(outcome: Result<T, ApiError>, transport_errors: bool) -> HttpResponse {
    match outcome {
        Ok(result) => json(
            StatusCode::OK,
            &Envelope {
                error: None,
                result: Some(result),
            },
        ),
        Err(error) if transport_errors => json(error.http_status(), &error.to_wire()),
        Err(error) => json(
            StatusCode::OK,
            &Envelope::<()> {
                error: Some(error.to_wire()),
                result: None,
            },
        ),
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(crate::protocol::reply::to_json(body))
}

#[derive(Serialize)]
struct Envelope<T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<error::ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
}
