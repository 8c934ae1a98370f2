//! `Batch`: runs each command through the HTTP API's handler for its method, in order or (with
//! `parallel`) concurrently; replies keep the command order and carry their own errors.

use std::sync::Arc;

use futures_util::future::join_all;

use super::{proto, timed};
use crate::api::{publish, queries, users, ApiError};
use crate::node::Node;

pub(super) async fn batch(node: &Arc<Node>, request: proto::BatchRequest) -> proto::BatchResponse {
    let replies = if request.parallel {
        join_all(request.commands.into_iter().map(|command| reply(node, command))).await
    } else {
        let mut replies = Vec::with_capacity(request.commands.len());
        for command in request.commands {
            replies.push(reply(node, command).await);
        }
        replies
    };
    proto::BatchResponse { replies }
}

/// One command's reply. The first method set wins, in Centrifugo's order; a command with none
/// (or only methods gyre does not implement) is error 104, "not found".
async fn reply(node: &Arc<Node>, command: proto::Command) -> proto::Reply {
    let mut reply = proto::Reply::default();
    let r = &mut reply;
    let error = if let Some(req) = command.publish {
        settle(&mut r.publish, timed("publish", publish::publish(node, req.into())).await)
    } else if let Some(req) = command.broadcast {
        settle(&mut r.broadcast, timed("broadcast", publish::broadcast(node, req.into())).await)
    } else if let Some(req) = command.subscribe {
        settle(&mut r.subscribe, timed("subscribe", users::subscribe(node, req.into())).await)
    } else if let Some(req) = command.unsubscribe {
        settle(&mut r.unsubscribe, timed("unsubscribe", users::unsubscribe(node, req.into())).await)
    } else if let Some(req) = command.disconnect {
        settle(&mut r.disconnect, timed("disconnect", users::disconnect(node, req.into())).await)
    } else if let Some(req) = command.history {
        settle(&mut r.history, timed("history", queries::history(node, req.into())).await)
    } else if let Some(req) = command.history_remove {
        settle(&mut r.history_remove, timed("history_remove", queries::history_remove(node, req.into())).await)
    } else if let Some(req) = command.presence {
        settle(&mut r.presence, timed("presence", queries::presence(node, req.into())).await)
    } else if let Some(req) = command.presence_stats {
        settle(&mut r.presence_stats, timed("presence_stats", queries::presence_stats(node, req.into())).await)
    } else if let Some(req) = command.info {
        settle(&mut r.info, timed("info", queries::info(node, req.into())).await)
    } else if let Some(req) = command.rpc {
        settle(&mut r.rpc, timed("rpc", queries::rpc(node, req.into())).await)
    } else if let Some(req) = command.refresh {
        settle(&mut r.refresh, timed("refresh", users::refresh(node, req.into())).await)
    } else if let Some(req) = command.channels {
        settle(&mut r.channels, timed("channels", queries::channels(node, req.into())).await)
    } else {
        Some(ApiError::NotFound.into())
    };
    reply.error = error;
    reply
}

/// Puts a handler's result in its reply field; returns its error, if any.
fn settle<Res, P>(slot: &mut Option<P>, outcome: Result<Res, ApiError>) -> Option<proto::Error>
where
    Res: Into<P>,
{
    match outcome {
        Ok(result) => {
            *slot = Some(result.into());
            None
        }
        Err(error) => Some(error.into()),
    }
}
