//! `batch` (`{"commands":[{"publish":{...}}, ...], "parallel": bool}`) and the legacy
//! newline-delimited `POST {prefix}` endpoint that cent.js `pipeline()` uses.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpResponse;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::methods::{execute, Outcome, KNOWN};
use crate::node::Node;
use crate::protocol::reply::to_json;

/// `batch` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BatchRequest {
    commands: Vec<Option<HashMap<String, Box<RawValue>>>>,
    parallel: bool,
}

/// Runs a batch; replies keep the input order and have no `result` wrapper.
pub(super) async fn batch(node: &Arc<Node>, req: BatchRequest) -> HttpResponse {
    if req.commands.is_empty() {
        return json("{}".to_owned());
    }
    let replies: Vec<Option<String>> = if req.parallel {
        join_all(req.commands.iter().map(|c| batch_reply(node, c.as_ref()))).await
    } else {
        let mut replies = Vec::with_capacity(req.commands.len());
        for command in &req.commands {
            replies.push(batch_reply(node, command.as_ref()).await);
        }
        replies
    };
    // One result that cannot be JSON fails the whole response, as Centrifugo's encoder does.
    let Some(replies) = replies.into_iter().collect::<Option<Vec<String>>>() else { return super::unencodable() };
    json(format!("{{\"replies\":[{}]}}", replies.join(",")))
}

/// One command's reply; `None` when its result cannot be JSON.
async fn batch_reply(node: &Arc<Node>, command: Option<&HashMap<String, Box<RawValue>>>) -> Option<String> {
    let Some(command) = command else {
        return Some(error_object(ApiError::BadRequest));
    };
    let Some((method, params)) = KNOWN.iter().find_map(|m| command.get(*m).map(|p| (*m, p))) else {
        return Some(error_object(ApiError::NotFound));
    };
    Some(match execute(method, params.get().as_bytes(), node).await {
        Some(Ok(Ok(result))) => format!("{{\"{method}\":{result}}}"),
        Some(Ok(Err(ApiError::Unencodable))) => return None,
        Some(Ok(Err(error))) => error_object(error),
        Some(Err(_)) => error_object(ApiError::BadRequest),
        None => error_object(ApiError::NotFound),
    })
}

fn error_object(error: ApiError) -> String {
    format!("{{\"error\":{}}}", to_json(&error.to_wire()))
}

fn json(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// One command of the legacy endpoint.
#[derive(Debug, Deserialize)]
struct LegacyCommand {
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    method: Option<serde_json::Value>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

/// Legacy method numbers (0 = publish, which is also the default).
const LEGACY_NUMBERS: &[&str] = &[
    "publish",
    "broadcast",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "rpc",
    "subscribe",
    "refresh",
];

enum LegacyMethod {
    Known(&'static str),
    UnknownNumber,
}

fn legacy_method(value: Option<&serde_json::Value>) -> Option<LegacyMethod> {
    match value {
        None | Some(serde_json::Value::Null) => Some(LegacyMethod::Known("publish")),
        Some(serde_json::Value::String(name)) => {
            LEGACY_NUMBERS.iter().find(|m| m.eq_ignore_ascii_case(name)).map(|m| LegacyMethod::Known(m))
        }
        Some(serde_json::Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| LEGACY_NUMBERS.get(n as usize))
                .map_or(LegacyMethod::UnknownNumber, |m| LegacyMethod::Known(m)),
        ),
        Some(_) => None,
    }
}

/// `POST {prefix}`: a stream of `{"id","method","params"}` objects; replies joined by `\n`.
pub(super) async fn legacy(node: &Arc<Node>, body: &[u8]) -> HttpResponse {
    if body.iter().all(u8::is_ascii_whitespace) {
        return super::bad_request();
    }
    let mut replies = Vec::new();
    for command in serde_json::Deserializer::from_slice(body).into_iter::<LegacyCommand>() {
        let Ok(command) = command else { return super::bad_request() };
        let Some(method) = legacy_method(command.method.as_ref()) else { return super::bad_request() };
        let outcome: Outcome = match method {
            LegacyMethod::UnknownNumber => Err(ApiError::NotFound),
            LegacyMethod::Known(method) => {
                let params = command.params.as_ref().map_or("{}", |p| p.get());
                match execute(method, params.as_bytes(), node).await {
                    Some(Ok(outcome)) => outcome,
                    _ => Err(ApiError::BadRequest),
                }
            }
        };
        if outcome == Err(ApiError::Unencodable) {
            return super::unencodable();
        }
        replies.push(legacy_reply(command.id, outcome));
    }
    json(replies.join("\n"))
}

fn legacy_reply(id: Option<u32>, outcome: Outcome) -> String {
    let id = id.filter(|id| *id > 0).map(|id| format!("\"id\":{id},")).unwrap_or_default();
    match outcome {
        Ok(result) => format!("{{{id}\"result\":{result}}}"),
        Err(error) => format!("{{{id}\"error\":{}}}", to_json(&error.to_wire())),
    }
}
