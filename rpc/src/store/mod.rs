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
//! - `incarnation.rs`: which life of the data Redis holds (a new one after it lost its data);
//! - `mirrors.rs`: mirror status records, sync-now, the upstream list's bookkeeping;
//! - `blocks.rs`: pushed blocks of the log chain; `changes.rs`: the task change stream;
//! - `retention.rs`: finished one-off tasks expire, the change stream is bounded in time.
//!
//! The connection (`conn.rs`) is the connection manager of `[redis] url`, or of the primary
//! Redis Sentinel names (`sentinel.rs`, followed across failovers); writes that must reach
//! `[redis] min_replicas_ack` replicas are followed by WAIT on a connection of their own.
//!
//! Reads that need no atomicity use pipelines.

mod blocks;
mod changes;
mod cluster;
mod conn;
mod incarnation;
mod keys;
mod listing;
mod mirrors;
mod reply;
mod retention;
mod scripts;
mod sentinel;
mod tasks;

pub use blocks::BlockRecord;
pub use changes::TaskChange;
pub use cluster::{Beat, DispatchReport, LeaseAcquire, NodeRecord};
pub use incarnation::Incarnation;
pub use keys::Keys;
pub use listing::{TaskPage, TaskQuery};
pub use mirrors::{ListStatus, MirrorReported, MirrorRun, MirrorStatus};
pub use retention::Expired;
pub use tasks::{
    Claimed, Created, Finished, KillOutcome, NewTask, Outcome, Placement, RunCheck, SyncNow,
};

use gitflock_core::config::RedisConfig;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use conn::{ACKED_LANES, Conn, Lane};
use scripts::Scripts;
use sentinel::Primary;

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
            StoreError::Redis(e) if e.code() == Some(conn::NOT_REPLICATED) => {
                "not replicated to [redis] min_replicas_ack replicas".into()
            }
            StoreError::Redis(e) if let Some(why) = tls_failure(e) => format!("TLS: {why}"),
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

/// The client of `url`; a `rediss://` server's certificate is checked against `tls_ca` (PEM)
/// when given, else against the system's roots. The URL's user and password stay inside the
/// client: no error of this store shows them (see [`StoreError::category`]).
fn client(url: &str, tls_ca: Option<&Path>) -> Result<redis::Client> {
    match tls_certificates(tls_ca)? {
        Some(certs) => Ok(redis::Client::build_with_tls(url, certs)?),
        None => Ok(redis::Client::open(url)?),
    }
}

/// What a failed TLS handshake with Redis means, in fixed words (the error's own text is not
/// passed on: only its kind is recognised); None when it is not about TLS.
fn tls_failure(e: &redis::RedisError) -> Option<&'static str> {
    if !e.is_io_error() {
        return None;
    }
    let text = e.to_string().to_ascii_lowercase();
    Some(if text.contains("unknownissuer") {
        "the server's certificate is not signed by [redis] tls_ca (or the system's CAs)"
    } else if text.contains("not valid for name") || text.contains("notvalidforname") {
        "the server's certificate does not name the host in [redis] url"
    } else if text.contains("expired") {
        "the server's certificate has expired (or is not valid yet)"
    } else if text.contains("peer certificate") || text.contains("fatal alert") {
        "the handshake failed"
    } else if text.contains("corrupt message") || text.contains("invalid content type") {
        "the server does not speak TLS (is [redis] url rediss:// for a plaintext port?)"
    } else {
        return None;
    })
}

/// One plain connection, dropped at once: the connection manager retries a failing connect
/// without end and says nothing of why, so a TLS or password problem would only ever show
/// as "does not answer"; this way its category reaches the start-up log.
async fn first_contact(client: &redis::Client) -> Result<()> {
    let config =
        redis::AsyncConnectionConfig::new().set_connection_timeout(Some(Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(())
}

/// `[redis] tls_ca` as redis-rs takes it (also for connections found through sentinels).
pub(crate) fn tls_certificates(tls_ca: Option<&Path>) -> Result<Option<redis::TlsCertificates>> {
    let Some(path) = tls_ca else { return Ok(None) };
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Invalid(format!(
            "cannot read [redis] tls_ca {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// Where the store's connections go.
#[derive(Clone)]
enum Link {
    /// `[redis] url`: the one Redis.
    Direct(Box<redis::Client>),
    /// `[redis] sentinels`: the primary they name, followed across failovers.
    Sentinel(Arc<Primary>),
}

#[derive(Clone)]
pub struct Store {
    link: Link,
    conn: Conn,
    /// Writes that must reach `[redis] min_replicas_ack` replicas before they count (state
    /// transitions, the lease); the same as `conn` when that is 0.
    acked: Arc<[Conn]>,
    /// Which of `acked` the next acknowledged write takes.
    next_acked: Arc<std::sync::atomic::AtomicUsize>,
    keys: Keys,
    scripts: Arc<Scripts>,
    /// The highest claim number this process was given: CLAIM and INCARNATION never go below
    /// it, so a Redis restored from an older snapshot cannot hand a number out twice
    /// (`incarnation.rs`).
    claims_seen: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    fn manager_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(usize::MAX)
            .set_max_delay(Duration::from_secs(1))
    }

    /// Connects: to `[redis] url` (the connection manager reconnects by itself, without
    /// limit), or to the primary the sentinels name (found again after a failover).
    pub async fn connect(config: &RedisConfig) -> Result<Store> {
        let replicas = config.min_replicas_ack;
        let (link, conn, acked) = match &config.sentinel {
            None => {
                let client = client(&config.url, config.tls_ca.as_deref())?;
                first_contact(&client).await?;
                let manager = |c: &redis::Client| {
                    ConnectionManager::new_with_config(c.clone(), Self::manager_config())
                };
                let conn = Conn::direct(manager(&client).await?);
                let mut acked = vec![conn.clone()];
                if replicas > 0 {
                    acked.clear();
                    for _ in 0..ACKED_LANES {
                        acked.push(Conn::direct(manager(&client).await?).acked(replicas));
                    }
                }
                (Link::Direct(Box::new(client)), conn, acked)
            }
            Some(sentinels) => {
                let data = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())?;
                let tls = config.url.starts_with("rediss://");
                let certs = tls_certificates(config.tls_ca.as_deref())?;
                let settings = data.redis_settings();
                let p = Primary::connect(sentinels, settings, tls, certs, Lane::COUNT).await?;
                let conn = Conn::primary(p.clone(), Lane::Commands);
                let acked = match replicas {
                    0 => vec![conn.clone()],
                    n => (0..ACKED_LANES)
                        .map(|i| Conn::primary(p.clone(), Lane::Acked(i)).acked(n))
                        .collect(),
                };
                (Link::Sentinel(p), conn, acked)
            }
        };
        Ok(Store {
            link,
            conn,
            acked: acked.into(),
            next_acked: Default::default(),
            keys: Keys::new(&config.prefix),
            scripts: Arc::new(Scripts::new()),
            claims_seen: Default::default(),
        })
    }

    /// A store that connects at its first use (unit tests that need one but never call it).
    #[cfg(test)]
    pub(crate) fn unconnected(url: &str, prefix: &str) -> Result<Store> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), Self::manager_config())?;
        let conn = Conn::direct(conn);
        Ok(Store {
            link: Link::Direct(Box::new(client)),
            acked: vec![conn.clone()].into(),
            next_acked: Default::default(),
            conn,
            keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
            claims_seen: Default::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The connection for a write that must reach the replicas (see `acked`).
    fn acked(&self) -> Conn {
        if self.acked.len() == 1 {
            return self.acked[0].clone();
        }
        let i = self
            .next_acked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.acked[i % self.acked.len()].clone()
    }

    /// A client of the Redis to open connections of their own to (pub/sub, blocking reads):
    /// with sentinels, the current primary's.
    fn client(&self) -> redis::Client {
        match &self.link {
            Link::Direct(c) => (**c).clone(),
            Link::Sentinel(p) => p.client(),
        }
    }

    /// Resolves when the primary moves after this call (never with `[redis] url`): whoever
    /// holds a connection of its own ([`Store::pubsub`], [`Store::blocking_connection`])
    /// opens a new one. Call it before opening the connection, so no move is missed.
    pub fn primary_moved(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let moves = match &self.link {
            Link::Direct(_) => None,
            Link::Sentinel(p) => Some(p.moves()),
        };
        async move {
            match moves {
                None => std::future::pending().await,
                Some(mut rx) => {
                    let _ = rx.changed().await;
                }
            }
        }
    }

    /// A connection of its own without a response timeout, for blocking reads.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(2)));
        Ok(self
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        Ok(self.client().get_async_pubsub().await?)
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
