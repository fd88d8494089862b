//! [`Redis`]: the Redis a cluster runs on — a redis-server it started, one it was given by
//! URL, or a sentinel topology it started.

use crate::redis_server::RedisServer;
use crate::sentinel::SentinelRedis;

/// The Redis a cluster runs on.
pub enum Redis {
    /// Started for the cluster: stopped after its nodes.
    Started(RedisServer),
    /// Given by URL (`gitflock dev --redis`, the benchmarks): left alone.
    External(String),
    /// A primary, a replica and three sentinels started for the cluster (`gitflock dev
    /// --sentinel`, the failover tests): the nodes find the primary through the sentinels.
    Sentinel(SentinelRedis),
}

impl Redis {
    /// The URL of the Redis (with sentinels: of the current primary).
    pub fn url(&self) -> String {
        match self {
            Redis::Started(s) => s.url(),
            Redis::External(url) => url.clone(),
            Redis::Sentinel(s) => s.url(),
        }
    }

    /// The redis-server the cluster started, if it did (with sentinels: the primary).
    pub fn server(&mut self) -> Option<&mut RedisServer> {
        match self {
            Redis::Started(s) => Some(s),
            Redis::External(_) => None,
            Redis::Sentinel(s) => s.primary(),
        }
    }

    /// The sentinel topology, if the cluster runs on one.
    pub fn sentinel(&mut self) -> Option<&mut SentinelRedis> {
        match self {
            Redis::Sentinel(s) => Some(s),
            _ => None,
        }
    }

    /// [`RedisServer::kill9_and_restart`]; an error on an external Redis.
    pub async fn kill9_and_restart(&mut self) -> Result<(), String> {
        match self.server() {
            Some(s) => s.kill9_and_restart().await,
            None => Err("an external Redis is not the harness's to restart".into()),
        }
    }
}
