//! One [`Presence`] actor per channel with presence enabled: who is subscribed, as
//! [`ClientInfo`] by [`ClientId`]. Owned by the registry, which adds and removes entries as
//! clients subscribe and leave.

use std::collections::{BTreeMap, HashSet};

use actix::prelude::*;

use crate::domain::{ClientId, ClientInfo};

/// The presence set of one channel on this node.
#[derive(Default)]
pub struct Presence {
    entries: BTreeMap<ClientId, ClientInfo>,
}

impl Actor for Presence {
    type Context = Context<Self>;
}

/// Adds (or replaces) a client's entry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddPresence(pub ClientInfo);

/// Removes a client's entry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemovePresence(pub ClientId);

/// All entries.
#[derive(Debug, Message)]
#[rtype(result = "BTreeMap<ClientId, ClientInfo>")]
pub struct GetPresence;

/// Counts of clients and distinct users.
#[derive(Debug, Message)]
#[rtype(result = "PresenceStats")]
pub struct GetPresenceStats;

/// Presence counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Connections.
    pub num_clients: u32,
    /// Distinct users.
    pub num_users: u32,
}

impl Handler<AddPresence> for Presence {
    type Result = ();

    fn handle(&mut self, AddPresence(info): AddPresence, _: &mut Self::Context) {
        self.entries.insert(info.client.clone(), info);
    }
}

impl Handler<RemovePresence> for Presence {
    type Result = ();

    fn handle(&mut self, RemovePresence(client): RemovePresence, _: &mut Self::Context) {
        self.entries.remove(&client);
    }
}

impl Handler<GetPresence> for Presence {
    type Result = MessageResult<GetPresence>;

    fn handle(&mut self, _: GetPresence, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.entries.clone())
    }
}

impl Handler<GetPresenceStats> for Presence {
    type Result = MessageResult<GetPresenceStats>;

    fn handle(&mut self, _: GetPresenceStats, _: &mut Self::Context) -> Self::Result {
        let users: HashSet<&str> = self.entries.values().map(|i| &*i.user).collect();
        MessageResult(PresenceStats { num_clients: self.entries.len() as u32, num_users: users.len() as u32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str, client: &str) -> ClientInfo {
        ClientInfo { user: user.into(), client: client.into(), conn_info: None, chan_info: None }
    }

    #[actix::test]
    async fn counts_clients_and_distinct_users() {
        let presence = Presence::default().start();
        presence.send(AddPresence(info("1", "a"))).await.unwrap();
        presence.send(AddPresence(info("1", "b"))).await.unwrap();
        presence.send(AddPresence(info("2", "c"))).await.unwrap();
        presence.send(RemovePresence("c".into())).await.unwrap();
        let stats = presence.send(GetPresenceStats).await.unwrap();
        assert_eq!(stats, PresenceStats { num_clients: 2, num_users: 1 });
        let all = presence.send(GetPresence).await.unwrap();
        assert_eq!(all.keys().map(ClientId::as_str).collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
