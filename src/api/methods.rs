//! Method dispatch: decode the body for a method, run its handler, encode its result.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{publish, queries, users, ApiError, MalformedBody};
use crate::node::Node;

/// Methods served at `{prefix}/{method}`, in the order `batch` picks a command's key.
pub(super) const KNOWN: &[&str] = &[
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "history",
    "history_remove",
    "presence",
    "presence_stats",
    "info",
    "rpc",
    "refresh",
    "channels",
];

/// A method's outcome: its result as JSON text, or an API error.
pub(super) type Outcome = Result<String, ApiError>;

/// Runs `method` with a JSON `body`; `None` for an unknown method.
pub(super) async fn execute(method: &str, body: &[u8], node: &Arc<Node>) -> Option<Result<Outcome, MalformedBody>> {
    Some(match method {
        "publish" => run(body, |r| publish::publish(node, r)).await,
        "broadcast" => run(body, |r| publish::broadcast(node, r)).await,
        "subscribe" => run(body, |r| users::subscribe(node, r)).await,
        "unsubscribe" => run(body, |r| users::unsubscribe(node, r)).await,
        "disconnect" => run(body, |r| users::disconnect(node, r)).await,
        "refresh" => run(body, |r| users::refresh(node, r)).await,
        "history" => run(body, |r| queries::history(node, r)).await,
        "history_remove" => run(body, |r| queries::history_remove(node, r)).await,
        "presence" => run(body, |r| queries::presence(node, r)).await,
        "presence_stats" => run(body, |r| queries::presence_stats(node, r)).await,
        "channels" => run(body, |r| queries::channels(node, r)).await,
        "info" => run(body, |r| queries::info(node, r)).await,
        "rpc" => run(body, |r| queries::rpc(node, r)).await,
        _ => return None,
    })
}

/// Decodes `body` as `method`'s request without running it: `None` for an unknown method, else
/// whether it is a valid request (the entry point of the API fuzz target).
pub fn decode_request(method: &str, body: &[u8]) -> Option<bool> {
    fn valid<Req: DeserializeOwned + Default>(body: &[u8]) -> bool {
        super::decode::<Req>(body).is_ok()
    }
    Some(match method {
        "publish" => valid::<publish::PublishRequest>(body),
        "broadcast" => valid::<publish::BroadcastRequest>(body),
        "subscribe" => valid::<users::SubscribeRequest>(body),
        "unsubscribe" => valid::<users::UnsubscribeRequest>(body),
        "disconnect" => valid::<users::DisconnectRequest>(body),
        "refresh" => valid::<users::RefreshRequest>(body),
        "history" => valid::<queries::HistoryRequest>(body),
        "presence" | "presence_stats" | "history_remove" => valid::<queries::ChannelRequest>(body),
        "channels" => valid::<queries::ChannelsRequest>(body),
        "info" => valid::<queries::InfoRequest>(body),
        "rpc" => valid::<queries::RpcRequest>(body),
        _ => return None,
    })
}

async fn run<Req, Res, Fut>(body: &[u8], handler: impl FnOnce(Req) -> Fut) -> Result<Outcome, MalformedBody>
where
    Req: DeserializeOwned + Default,
    Res: Serialize,
    Fut: std::future::Future<Output = Result<Res, ApiError>>,
{
    let request = super::decode::<Req>(body)?;
    Ok(handler(request).await.and_then(|result| encode(&result)))
}

/// The result as JSON; a result holding binary data (published with `b64data` or by a Protobuf
/// client) cannot be JSON: the response is HTTP 500, as Centrifugo's, with a log line saying why.
fn encode<Res: Serialize>(result: &Res) -> Result<String, ApiError> {
    crate::protocol::reply::try_json(result).map_err(|_| {
        tracing::warn!(
            "an API result holds data that is not JSON (published with b64data or by a Protobuf client); \
             the HTTP API speaks JSON and cannot return it: answering HTTP 500 (read it over a Protobuf client)"
        );
        ApiError::Unencodable
    })
}
