//! A Redis Cluster as one connection for commands: the slots' owners read
//! from a seed node, a connection to each master, and each command sent to
//! the master of its key's slot.
//!
//! Topology is read once per link. Any sign that it changed (a redirection,
//! `TRYAGAIN` during a slot migration, `CLUSTERDOWN`, or a master that no
//! longer answers) fails the link like any other loss, and the next link
//! reads the topology again: the grace keeps sessions open meanwhile, and
//! every room resyncs from its snapshot. A failover or a slot migration is
//! then a blip, with no redirection logic of its own to get wrong.

use futures_util::FutureExt;
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture,
    RedisResult, Value,
};

use crate::slot::{SLOTS, slot};
use crate::topology::slot_ranges;

/// The masters of a Redis Cluster, connected.
pub(crate) struct Cluster {
    masters: Vec<Master>,
    /// The index in `masters` of each slot's owner.
    owners: Vec<usize>,
}

struct Master {
    info: ConnectionInfo,
    connection: MultiplexedConnection,
}

impl Cluster {
    /// Reads the topology from the first seed that answers and connects to
    /// every master.
    pub(crate) async fn connect(
        seeds: &[ConnectionInfo],
        config: &AsyncConnectionConfig,
    ) -> RedisResult<Self> {
        let mut failure = RedisError::from((ErrorKind::InvalidClientConfig, "no seed node"));
        for seed in seeds {
            match Self::connect_through(seed, config).await {
                Ok(cluster) => return Ok(cluster),
                Err(error) => failure = error,
            }
        }
        Err(failure)
    }

    async fn connect_through(seed: &ConnectionInfo, config: &AsyncConnectionConfig) -> RedisResult<Self> {
        let mut connection =
            redis::Client::open(seed.clone())?.get_multiplexed_async_connection_with_config(config).await?;
        let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut connection).await?;
        let mut addresses: Vec<(String, u16)> = Vec::new();
        let mut owners = vec![usize::MAX; usize::from(SLOTS)];
        for range in slot_ranges(&ranges)? {
            let index =
                match addresses.iter().position(|(host, port)| *host == range.host && *port == range.port) {
                    Some(index) => index,
                    None => {
                        addresses.push((range.host, range.port));
                        addresses.len() - 1
                    }
                };
            let slots = usize::from(range.first)..=usize::from(range.last.min(SLOTS - 1));
            for owner in &mut owners[slots] {
                *owner = index;
            }
        }
        if owners.contains(&usize::MAX) {
            return Err(RedisError::from((ErrorKind::ClusterDown, "not every slot has a master")));
        }
        let mut masters = Vec::with_capacity(addresses.len());
        for (host, port) in addresses {
            let info = at(seed, host, port);
            let connection = redis::Client::open(info.clone())?
                .get_multiplexed_async_connection_with_config(config)
                .await?;
            masters.push(Master { info, connection });
        }
        Ok(Self { masters, owners })
    }

    /// Where to follow the feeds: any node hears every channel of the
    /// cluster, and the first master is as good as any.
    pub(crate) fn feed_node(&self) -> ConnectionInfo {
        self.masters[0].info.clone()
    }

    /// A connection to each master, to load the scripts into each.
    pub(crate) fn masters(&mut self) -> impl Iterator<Item = &mut MultiplexedConnection> {
        self.masters.iter_mut().map(|master| &mut master.connection)
    }

    /// The master a command goes to: its key's slot's, or the first for a
    /// command without a key.
    fn owner(&self, command: &Cmd) -> usize {
        routing_key(command).map_or(0, |key| self.owners[usize::from(slot(key))])
    }
}

/// The seed's address changed to `host:port`, its credentials and
/// encryption kept.
fn at(seed: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let addr = match &seed.addr {
        ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
            ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: tls_params.clone() }
        }
        _ => ConnectionAddr::Tcp(host, port),
    };
    ConnectionInfo { addr, redis: seed.redis.clone() }
}

/// The key a command is routed by: a script's first key, or a command's
/// first argument; none for the commands that name no key.
fn routing_key(command: &Cmd) -> Option<&[u8]> {
    let mut args = command.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        redis::Arg::Cursor => &[],
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        let _script = args.next();
        let keys = args.next()?;
        return (keys != b"0").then(|| args.next()).flatten();
    }
    let keyless = [&b"PUBLISH"[..], b"SCRIPT", b"PING", b"CLUSTER"];
    if keyless.iter().any(|keyless| name.eq_ignore_ascii_case(keyless)) {
        return None;
    }
    args.next()
}

/// A reply that says the topology moved on, as an error that fails the
/// link; any other reply as it is.
fn topology_moved(reply: Value) -> RedisResult<Value> {
    if let Value::ServerError(error) = &reply {
        if ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"].contains(&error.code()) {
            return Err(RedisError::from(error.clone()));
        }
    }
    Ok(reply)
}

impl ConnectionLike for Cluster {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        let owner = self.owner(command);
        async move { topology_moved(self.masters[owner].connection.req_packed_command(command).await?) }
            .boxed()
    }

    /// Sends each master its share of the pipeline at once, each share in
    /// the pipeline's order, and puts the replies back in that order.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
            if offset != 0 || count != commands.len() {
                return Err(RedisError::from((
                    ErrorKind::ClientError,
                    "transactions are not sent to a Redis Cluster",
                )));
            }
            let mut shares: Vec<(Pipeline, Vec<usize>)> =
                self.masters.iter().map(|_| (redis::pipe(), Vec::new())).collect();
            for (index, command) in commands.iter().enumerate() {
                let share = &mut shares[self.owner(command)];
                share.0.add_command((*command).clone());
                share.1.push(index);
            }
            let sent =
                self.masters.iter_mut().zip(shares).filter(|(_, (_, indices))| !indices.is_empty()).map(
                    |(master, (share, indices))| async move {
                        let replies = master.connection.req_packed_commands(&share, 0, indices.len()).await;
                        (indices, replies)
                    },
                );
            let mut replies = vec![Value::Nil; commands.len()];
            for (indices, share) in join_all(sent).await {
                for (index, reply) in indices.into_iter().zip(share?) {
                    replies[index] = topology_moved(reply)?;
                }
            }
            Ok(replies)
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_routed_by_their_first_key() {
        let mut script = redis::cmd("EVALSHA");
        script.arg("abc").arg(2).arg("room:{a}:meta").arg("room:{a}:history").arg("argument");
        assert_eq!(routing_key(&script), Some(&b"room:{a}:meta"[..]));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("argument");
        assert_eq!(routing_key(&keyless), None);
        let mut publish = redis::cmd("PUBLISH");
        publish.arg("channel").arg("event");
        assert_eq!(routing_key(&publish), None);
        let mut members = redis::cmd("SMEMBERS");
        members.arg("node:{7}:rooms");
        assert_eq!(routing_key(&members), Some(&b"node:{7}:rooms"[..]));
    }
}
