//! The store: the only module that talks to Redis.
//!
//! Every key and channel is built by [`Keys`] (`keys.rs`, whose doc is the key layout); every
//! state transition is one Lua script (`scripts/`, each documenting its KEYS, ARGV, reply and
//! invariant); every reply is read into a named type, and a reply of the wrong shape is an
//! error ([`StoreError::Reply`], `reply.rs`). Other modules see typed methods, by concern:
//!
//! - `tasks.rs`: create, read, kill, delete, and a run's way (claim, finish, recover,
//!   handback); `listing.rs`: ListTasks pages and counts;
//! - `cluster.rs`: the lease, dispatch, presence, and the master's verdicts on nodes;
//! - `mirrors.rs`: mirror status records, sync-now, the upstream list's bookkeeping;
//! - `blocks.rs`: pushed blocks of the log chain; `changes.rs`: the task change stream.
//!
//! Reads that need no atomicity use pipelines.

mod blocks;
mod changes;
mod cluster;
mod keys;
mod listing;
mod mirrors;
mod reply;
mod scripts;
mod tasks;

pub use blocks::BlockRecord;
pub use changes::TaskChange;
pub use cluster::{Beat, DispatchReport, LeaseAcquire, NodeRecord};
pub use keys::Keys;
pub use listing::{TaskPage, TaskQuery};
pub use mirrors::{ListStatus, MirrorReported, MirrorRun, MirrorStatus};
pub use tasks::{Claimed, Created, Finished, KillOutcome, NewTask, Outcome, Placement, SyncNow};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::sync::Arc;
use std::time::Duration;

use scripts::Scripts;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or failed; the caller may retry.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A fenced master write was refused: this node does not hold the lease (any more).
    #[error("not the master")]
    NotMaster,
    /// A page token that this store did not make.
    #[error("{0}")]
    Invalid(String),
    /// Redis answered something of the wrong shape (a script's reply, a stored record): the
    /// data or the scripts are not what this code expects. Names the reply, never a value.
    #[error("malformed reply: {0}")]
    Reply(String),
}

impl StoreError {
    /// What kind of failure this is, in words safe to show anyone: a Redis error's own text
    /// could in principle echo a URL with credentials, so only its category leaves the store.
    pub fn category(&self) -> String {
        match self {
            StoreError::Redis(e) if e.is_timeout() => "timed out".into(),
            StoreError::Redis(e)
                if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() =>
            {
                "connection failed".into()
            }
            StoreError::Redis(e) => format!("{:?}", e.kind()),
            StoreError::NotMaster => "not the master".into(),
            StoreError::Invalid(_) => "invalid request".into(),
            StoreError::Reply(_) => "malformed reply".into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The error code fenced scripts refuse with (`redis.error_reply('NOTMASTER …')`).
const NOT_MASTER: &str = "NOTMASTER";

/// Maps a fenced script's refusal, found by its error code, to `NotMaster`.
fn fenced<T>(r: redis::RedisResult<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.code() == Some(NOT_MASTER) => Err(StoreError::NotMaster),
        Err(e) => Err(e.into()),
    }
}

#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    scripts: Arc<Scripts>,
}

impl Store {
    fn manager_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(usize::MAX)
            .set_max_delay(Duration::from_secs(1))
    }

    /// Connects (the connection manager reconnects by itself, without limit).
    pub async fn connect(url: &str, prefix: &str) -> Result<Store> {
        let client = redis::Client::open(url)?;
        let conn =
            ConnectionManager::new_with_config(client.clone(), Self::manager_config()).await?;
        Ok(Store {
            client,
            conn,
            keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// A store that connects at its first use (unit tests that need one but never call it).
    #[cfg(test)]
    pub(crate) fn unconnected(url: &str, prefix: &str) -> Result<Store> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), Self::manager_config())?;
        Ok(Store {
            client,
            conn,
            keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection of its own without a response timeout, for blocking reads.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(2)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        Ok(self.client.get_async_pubsub().await?)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.publish(channel, message).await?;
        Ok(())
    }
}
