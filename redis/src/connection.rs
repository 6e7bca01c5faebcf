//! Where a link's commands go: one Redis, or the masters of a Redis
//! Cluster, behind one connection type so that the link, its pipelines and
//! its scripts do not tell them apart.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use crate::cluster::Cluster;

/// What a link connects to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One Redis (a shard, when there are several).
    Alone(redis::Client),
    /// A Redis Cluster, by its seed nodes.
    Cluster(Vec<ConnectionInfo>),
}

/// A link's connection for commands.
pub(crate) enum Commands {
    Alone(MultiplexedConnection),
    Cluster(Cluster),
}

impl Target {
    /// Connects for commands; also returns where to follow the feeds.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<(Commands, redis::Client)> {
        match self {
            Self::Alone(client) => {
                let commands = client.get_multiplexed_async_connection_with_config(config).await?;
                Ok((Commands::Alone(commands), client.clone()))
            }
            Self::Cluster(seeds) => {
                let cluster = Cluster::connect(seeds, config).await?;
                let feed = redis::Client::open(cluster.feed_node())?;
                Ok((Commands::Cluster(cluster), feed))
            }
        }
    }
}

impl Commands {
    /// A connection to each Redis that runs scripts: the one, or every
    /// master.
    pub(crate) fn script_hosts(&mut self) -> Vec<&mut MultiplexedConnection> {
        match self {
            Self::Alone(connection) => vec![connection],
            Self::Cluster(cluster) => cluster.masters().collect(),
        }
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Alone(connection) => connection.req_packed_command(command),
            Self::Cluster(cluster) => cluster.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Alone(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Alone(connection) => connection.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}
