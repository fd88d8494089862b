//! [`Primary`]: the Redis primary as Redis Sentinel names it, found again after a failover.
//!
//! redis-rs finds a primary through sentinels (`SentinelClient`, which also checks that the
//! server it names calls itself master), but a `ConnectionManager` made from that client
//! reconnects to the same address forever. This is the smallest wrapper that follows a
//! failover: it keeps `lanes` connection managers (the store's lanes, see `conn.rs`) to the
//! current primary and swaps
//! them all for new ones when the sentinels name another server. It asks the sentinels again
//!
//! - at once when a command meets a dropped or refused connection or `READONLY` (the old
//!   primary died, or came back demoted to a replica): [`Primary::suspect`];
//! - at once on Sentinel's `+switch-master` message (a subscription on one sentinel at a time);
//! - every few seconds anyway, in case both of those were missed.
//!
//! Pub/sub and the blocking stream reads open their connections from [`Primary::client`] and
//! reconnect when [`Primary::moves`] ticks. The managers' own reconnects are bounded here: a
//! dead primary's manager gives up quickly instead of retrying its address forever.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisResult};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use gitflock_core::config::SentinelConfig;

/// A look at the sentinels when nothing went wrong (a safety net for missed signals).
const POLL: Duration = Duration::from_secs(3);
/// The least time between two looks (errors come in bursts).
const MIN_GAP: Duration = Duration::from_millis(100);
/// The longest a look (sentinels, then the named primary's ROLE) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// The channel on which sentinels announce a promotion.
const SWITCH_MASTER: &str = "+switch-master";

/// The primary's address and its connections.
struct Current {
    addr: ConnectionAddr,
    client: Client,
    /// One per lane, in lane order.
    managers: Vec<ConnectionManager>,
}

pub struct Primary {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Arc<Current>>,
    /// Rung to look at the sentinels now.
    look: Arc<Notify>,
    /// Counts the primary's moves; readers that hold a connection of their own reconnect
    /// when it ticks.
    moved: watch::Sender<u64>,
    /// Ends the follow and watch loops when the store goes away.
    closed: CancellationToken,
    /// Connection managers per primary.
    lanes: usize,
}

impl Drop for Primary {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// Managers to a primary: their reconnects are bounded, so calls to a primary that died fail
/// fast (and make [`Primary`] look again) rather than wait on its address forever.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

/// `host:port` for logs.
fn shown(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        other => other.to_string(),
    }
}

impl Primary {
    /// Asks the sentinels for the primary named `config.master` and connects to it; `data`
    /// is the database, user and password of the data nodes (from `[redis] url`), `tls` says
    /// whether they speak TLS (`rediss://`), checked against `certs` if given. With TLS the
    /// sentinels are spoken to over TLS too (checked the same way): a deployment that
    /// encrypts its data nodes does not leave the sentinels, which name them, in clear.
    pub async fn connect(
        config: &SentinelConfig,
        data: &RedisConnectionInfo,
        tls: bool,
        certs: Option<redis::TlsCertificates>,
        lanes: usize,
    ) -> RedisResult<Arc<Primary>> {
        let addrs = config.addrs.iter().map(|(h, p)| match tls {
            true => ConnectionAddr::TcpTls {
                host: h.clone(),
                port: *p,
                insecure: false,
                tls_params: None,
            },
            false => ConnectionAddr::Tcp(h.clone(), *p),
        });
        let mut b = SentinelClientBuilder::new(addrs, &config.master, SentinelServerType::Master)?
            .set_client_to_redis_db(data.db());
        if let Some(u) = data.username() {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = data.password() {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(p) = &config.password {
            b = b.set_client_to_sentinel_password(p);
        }
        if tls {
            b = b
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        }
        if let Some(certs) = certs {
            if tls {
                b = b.set_client_to_sentinel_certificates(certs.clone());
            }
            b = b.set_client_to_redis_certificates(certs);
        }
        let mut sentinels = b.build()?;
        let client = match tokio::time::timeout(LOOKUP_TIMEOUT, sentinels.async_get_client()).await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(redis::make_extension_error(
                    "TIMEOUT".into(),
                    Some("the sentinels did not name a primary in time".into()),
                ));
            }
        };
        let current = Current::open(client, lanes).await?;
        tracing::info!(primary = %shown(&current.addr), master = %config.master, "redis primary found through the sentinels");
        let p = Arc::new(Primary {
            sentinels: tokio::sync::Mutex::new(sentinels),
            current: RwLock::new(Arc::new(current)),
            look: Arc::new(Notify::new()),
            moved: watch::Sender::new(0),
            closed: CancellationToken::new(),
            lanes,
        });
        tokio::spawn(follow(Arc::downgrade(&p), p.look.clone(), p.closed.clone()));
        tokio::spawn(watch_switches(
            config.clone(),
            p.look.clone(),
            p.closed.clone(),
        ));
        Ok(p)
    }

    /// The manager of lane `lane` (`0..lanes`).
    pub fn manager(&self, lane: usize) -> ConnectionManager {
        self.current.read().unwrap().managers[lane].clone()
    }

    /// A client of the current primary (for pub/sub and blocking reads).
    pub fn client(&self) -> Client {
        self.current.read().unwrap().client.clone()
    }

    /// Something suggested the primary moved: look at the sentinels now.
    pub fn suspect(&self) {
        self.look.notify_one();
    }

    /// Ticks each time the primary moves.
    pub fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Asks the sentinels; if they name another server, connects to it and swaps.
    async fn relocate(&self) {
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            self.sentinels.lock().await.async_get_client().await
        })
        .await;
        let client = match found {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the sentinels name no reachable primary yet");
                return;
            }
            Err(_) => {
                tracing::debug!("the sentinels did not answer in time");
                return;
            }
        };
        let old = self.current.read().unwrap().addr.clone();
        if client.get_connection_info().addr() == &old {
            return;
        }
        match Current::open(client, self.lanes).await {
            Ok(new) => {
                tracing::warn!(from = %shown(&old), to = %shown(&new.addr), "redis primary moved; following it");
                *self.current.write().unwrap() = Arc::new(new);
                self.moved.send_modify(|n| *n += 1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the new redis primary yet");
            }
        }
    }
}

impl Current {
    async fn open(client: Client, lanes: usize) -> RedisResult<Current> {
        let mut managers = Vec::new();
        for _ in 0..lanes {
            let m = ConnectionManager::new_with_config(client.clone(), manager_config());
            match tokio::time::timeout(LOOKUP_TIMEOUT, m).await {
                Ok(m) => managers.push(m?),
                Err(_) => {
                    return Err(redis::make_extension_error(
                        "TIMEOUT".into(),
                        Some("the primary did not answer in time".into()),
                    ));
                }
            }
        }
        Ok(Current {
            addr: client.get_connection_info().addr().clone(),
            client,
            managers,
        })
    }
}

/// Looks at the sentinels when rung, and every [`POLL`] anyway, until the store goes away.
async fn follow(primary: std::sync::Weak<Primary>, look: Arc<Notify>, closed: CancellationToken) {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = look.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if let Some(wait) = MIN_GAP.checked_sub(last.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        last = Instant::now();
        let Some(p) = primary.upgrade() else { return };
        p.relocate().await;
    }
}

/// Subscribes to `+switch-master` on one sentinel after another (the next when one fails) and
/// rings `look` on each promotion of this primary.
async fn watch_switches(config: SentinelConfig, look: Arc<Notify>, closed: CancellationToken) {
    use futures_util::StreamExt;
    let mut next = 0usize;
    loop {
        let (host, port) = config.addrs[next % config.addrs.len()].clone();
        next += 1;
        let subscribed = async {
            let mut redis = RedisConnectionInfo::default();
            if let Some(p) = &config.password {
                redis = redis.set_password(p);
            }
            let info = ConnectionAddr::Tcp(host, port)
                .into_connection_info()?
                .set_redis_settings(redis);
            let mut ps = Client::open(info)?.get_async_pubsub().await?;
            ps.subscribe(SWITCH_MASTER).await?;
            RedisResult::Ok(ps)
        };
        let ps = tokio::select! {
            _ = closed.cancelled() => return,
            r = tokio::time::timeout(LOOKUP_TIMEOUT, subscribed) => r,
        };
        if let Ok(Ok(ps)) = ps {
            // Missed while not subscribed: look once now.
            look.notify_one();
            let mut messages = ps.into_on_message();
            loop {
                tokio::select! {
                    _ = closed.cancelled() => return,
                    m = messages.next() => match m {
                        // "<master name> <old ip> <old port> <new ip> <new port>"
                        Some(m) => {
                            let text: String = m.get_payload().unwrap_or_default();
                            if text.split(' ').next() == Some(config.master.as_str()) {
                                look.notify_one();
                            }
                        }
                        None => break,
                    }
                }
            }
        }
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
