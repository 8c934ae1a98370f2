//! Token renewal: `refresh`, `sub_refresh`, and the server API's refresh.

use crate::auth::TokenError;
use crate::client::session::{ClientSession, State};
use crate::domain::{unix_now, ChannelName, Payload};
use crate::node::VERSION;
use crate::protocol::command::{RefreshRequest, SubRefreshRequest};
use crate::protocol::outgoing::Push;
use crate::protocol::reply::{RefreshResult, SubRefreshResult};
use crate::protocol::{Disconnect, ReplyError};

use super::{ttl_until, Ctx};

impl ClientSession {
    pub(in crate::client) fn refresh(&mut self, id: u32, req: RefreshRequest, ctx: &mut Ctx) {
        if self.node.proxies.refresh.is_some() {
            tracing::debug!(client = %self.id, "refresh command while a refresh proxy extends connections (3501)");
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if req.token.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let now = unix_now();
        let claims = match self.node.verifier.verify_connection(&req.token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return self.close(ctx, Disconnect::EXPIRED),
            Err(TokenError::Invalid(reason)) => {
                tracing::info!(client = %self.id, %reason, "refresh token refused (3500)");
                return self.close(ctx, Disconnect::INVALID_TOKEN);
            }
        };
        let insecure = self.node.settings.client.insecure;
        let State::Connected(connection) = &mut self.state else {
            return;
        };
        if claims.user != *connection.user {
            return self.close(ctx, Disconnect::INVALID_TOKEN);
        }
        let expire_at = claims.expire_at.filter(|_| !insecure);
        if expire_at.is_some_and(|at| at <= now) {
            return self.close(ctx, Disconnect::EXPIRED);
        }
        connection.expire_at = expire_at;
        if let Some(at) = expire_at {
            self.schedule_connection_expiry_check(at, ctx);
        }
        let result = RefreshResult {
            client: self.id.to_string(),
            version: VERSION.to_owned(),
            expires: expire_at.is_some(),
            ttl: expire_at.map(ttl_until).unwrap_or(0),
        };
        self.push_reply(id, "refresh", &result);
    }

    pub(in crate::client) fn sub_refresh(&mut self, id: u32, req: SubRefreshRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = ChannelName::new_unchecked(&req.channel);
        let Some(subscription) = self.subscriptions.get(&channel) else {
            return self.push_error(id, ReplyError::PermissionDenied);
        };
        if !subscription.token_based {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if req.token.is_empty() {
            return self.push_error(id, ReplyError::BadRequest);
        }
        let now = unix_now();
        let claims = match self.node.verifier.verify_subscription(&req.token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return self.close(ctx, Disconnect::SUBSCRIPTION_EXPIRED),
            Err(TokenError::Invalid(_)) => return self.close(ctx, Disconnect::INVALID_TOKEN),
        };
        let user = self.connection().map(|c| c.user.clone()).unwrap_or_default();
        let client_mismatch = !claims.client.is_empty() && claims.client != self.id.as_str();
        if claims.channel != req.channel || claims.user != *user || client_mismatch {
            return self.close(ctx, Disconnect::INVALID_TOKEN);
        }
        if claims.expire_at.is_some_and(|at| at <= now) {
            return self.push_error(id, ReplyError::Expired);
        }
        if let Some(subscription) = self.subscriptions.get_mut(&channel) {
            subscription.expire_at = claims.expire_at;
        }
        if let Some(at) = claims.expire_at {
            self.schedule_subscription_expiry_check(channel, at, ctx);
        }
        let result =
            SubRefreshResult { expires: claims.expire_at.is_some(), ttl: claims.expire_at.map(ttl_until).unwrap_or(0) };
        self.push_reply(id, "sub_refresh", &result);
    }

    pub(in crate::client) fn server_refresh(
        &mut self,
        expired: bool,
        expire_at: Option<i64>,
        info: Option<Payload>,
        ctx: &mut Ctx,
    ) {
        if expired || expire_at.is_some_and(|at| at <= unix_now()) {
            return self.close(ctx, Disconnect::EXPIRED);
        }
        let State::Connected(connection) = &mut self.state else { return };
        connection.expire_at = expire_at;
        if let (Some(info), Some(_)) = (info, expire_at) {
            connection.info = Some(info);
        }
        if let Some(at) = expire_at {
            self.schedule_connection_expiry_check(at, ctx);
        }
        let body = SubRefreshResult { expires: expire_at.is_some(), ttl: expire_at.map(ttl_until).unwrap_or(0) };
        self.push_to_client("", Push::Refresh(&body));
    }
}
