//! [`SentinelRedis`]: a Redis that fails over, all on 127.0.0.1 — a primary, its replicas
//! (one by default), and three `redis-server --sentinel` watching them under one master name
//! (quorum 2).
//!
//! Who is primary is asked of the sentinels themselves (`SENTINEL get-master-addr-by-name`,
//! a RESP exchange on a plain socket: the harness links no Redis client). A killed server
//! restarts as a replica of whoever is primary then, so the next failover has a replica to
//! promote.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::port::free_port;
use crate::process::Process;
use crate::redis_server::{RedisOptions, RedisServer};
use crate::wait::{Poll, poll_until};

/// The name the sentinels know the primary by.
pub const SENTINEL_MASTER: &str = "gitflock";
/// How long the sentinels take to agree on the topology at start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`SentinelRedis`] is started.
#[derive(Clone, Debug)]
pub struct SentinelOptions {
    /// Sentinel's `down-after-milliseconds`: silence before the primary is judged down.
    pub down_after: Duration,
    /// Sentinel's `failover-timeout` (also the least time between two failovers of the
    /// same primary).
    pub failover_timeout: Duration,
    /// Replicas of the primary (at least 1).
    pub replicas: usize,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        SentinelOptions {
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(3000),
            replicas: 1,
        }
    }
}

/// The two data servers and the three sentinels; all killed (SIGKILL) when dropped.
pub struct SentinelRedis {
    /// Started as primary and replicas (in that order); which is which now, the sentinels
    /// say.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<(u16, Process)>,
    dir: PathBuf,
}

impl SentinelRedis {
    /// Starts the primary, its replicas and three sentinels, their files under `dir`; waits
    /// until the replicas are in sync and every sentinel names the primary and knows them.
    pub async fn start(dir: &Path, options: SentinelOptions) -> Result<SentinelRedis, String> {
        let server = |name: &str, replica_of| RedisOptions {
            log: Some(dir.join(format!("{name}.log"))),
            replica_of,
            ..RedisOptions::default()
        };
        let primary = RedisServer::start(&dir.join("primary"), server("primary", None)).await?;
        let p = primary.port();
        let mut servers = vec![primary];
        for i in 1..=options.replicas.max(1) {
            let name = format!("replica{i}");
            let r = RedisServer::start(&dir.join(&name), server(&name, Some(p))).await?;
            let port = r.port();
            servers.push(r);
            poll_until("a replica to sync", START_TIMEOUT, || async move {
                let synced = tokio::task::spawn_blocking(move || replica_synced(port, p)).await;
                if synced.unwrap_or(false) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await?;
        }
        let replicas = servers.len() as u32 - 1;
        let mut sentinels = Vec::new();
        for i in 1..=3 {
            let port = free_port()?;
            let conf = dir.join(format!("sentinel{i}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {p} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} {}\n\
                 sentinel failover-timeout {SENTINEL_MASTER} {}\n\
                 sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                dir.display(),
                options.down_after.as_millis(),
                options.failover_timeout.as_millis(),
            );
            std::fs::write(&conf, text)
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            let mut cmd = Command::new("redis-server");
            cmd.arg(&conf).arg("--sentinel");
            let log = dir.join(format!("sentinel{i}.log"));
            let name = format!("sentinel{i}");
            sentinels.push((port, Process::spawn(&name, &mut cmd, Some(&log), false)?));
        }
        let s = SentinelRedis {
            servers,
            sentinels,
            dir: dir.to_path_buf(),
        };
        let ports = s.sentinel_ports();
        poll_until("every sentinel to name the primary", START_TIMEOUT, || {
            let ports = ports.clone();
            async move {
                let named = tokio::task::spawn_blocking(move || {
                    ports.iter().all(|&s| master_on(s) == Some(p))
                        && ports.iter().all(|&s| sentinel_ready(s, replicas))
                })
                .await;
                if named.unwrap_or(false) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|(p, _)| *p).collect()
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`: `[redis] sentinels`.
    pub fn sentinels(&self) -> String {
        let addrs: Vec<String> = self
            .sentinel_ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        addrs.join(",")
    }

    /// The primary's port as the first sentinel that answers names it. Blocking (a loopback
    /// exchange).
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinel_ports().into_iter().find_map(master_on)
    }

    /// The server the sentinels name primary, if one of ours.
    pub fn primary(&mut self) -> Option<&mut RedisServer> {
        let port = self.primary_port()?;
        self.servers.iter_mut().find(|s| s.port() == port)
    }

    /// `redis://127.0.0.1:<primary>/0` (the last server started as primary if no sentinel
    /// answers).
    pub fn url(&self) -> String {
        let port = self
            .primary_port()
            .unwrap_or_else(|| self.servers[0].port());
        format!("redis://127.0.0.1:{port}/0")
    }

    /// Kills the current primary (SIGKILL); returns its port. It stays dead until
    /// [`SentinelRedis::restart_as_replica`].
    pub fn kill9_primary(&mut self) -> Result<u16, String> {
        let p = self.primary().ok_or("no sentinel names a primary")?;
        p.kill9();
        Ok(p.port())
    }

    /// Until the sentinels name another primary than `old` (a port); returns the new one.
    pub async fn wait_failover(&self, old: u16, timeout: Duration) -> Result<u16, String> {
        let ports = self.sentinel_ports();
        poll_until("the sentinels to promote a replica", timeout, || {
            let ports = ports.clone();
            async move {
                let named =
                    tokio::task::spawn_blocking(move || ports.into_iter().find_map(master_on))
                        .await;
                match named {
                    Ok(Some(p)) if p != old => Poll::Ready(p),
                    _ => Poll::Pending,
                }
            }
        })
        .await
    }

    /// Asks a sentinel for a failover with every server up (`SENTINEL FAILOVER`): a replica is
    /// promoted and the old primary demoted to a replica of it, still running.
    pub fn manual_failover(&self) -> Result<(), String> {
        let ports = self.sentinel_ports();
        let answered = ports.into_iter().find_map(|s| {
            let r = ask(s, &["SENTINEL", "FAILOVER", SENTINEL_MASTER])?;
            r.first().cloned()
        });
        match answered.as_deref() {
            Some("+OK") => Ok(()),
            Some(other) => Err(format!("SENTINEL FAILOVER: {other}")),
            None => Err("no sentinel answered SENTINEL FAILOVER".into()),
        }
    }

    /// Starts the server on port `port` again, as a replica of the current primary, and waits
    /// until it is in sync with whoever is primary then (the sentinels may fail over again
    /// meanwhile, and repoint it).
    pub async fn restart_as_replica(&mut self, port: u16) -> Result<(), String> {
        let primary = self.primary_port().ok_or("no sentinel names a primary")?;
        let s = self
            .servers
            .iter_mut()
            .find(|s| s.port() == port)
            .ok_or_else(|| format!("no server of ours on port {port}"))?;
        s.restart(Some(primary)).await?;
        let sentinels = self.sentinel_ports();
        poll_until("the restarted replica to sync", START_TIMEOUT, || {
            let sentinels = sentinels.clone();
            async move {
                let synced = tokio::task::spawn_blocking(move || {
                    let primary = sentinels.into_iter().find_map(master_on);
                    primary.is_some_and(|p| replica_synced(port, p))
                })
                .await;
                if synced.unwrap_or(false) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The processes that exited on their own since the last look, each reported once.
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        let mut out = Vec::new();
        for (i, s) in self.servers.iter_mut().enumerate() {
            if let Some(st) = s.exited() {
                out.push((format!("redis-server {}", i + 1), st));
            }
        }
        for (i, (_, p)) in self.sentinels.iter_mut().enumerate() {
            if let Some(st) = p.exited() {
                out.push((format!("sentinel{}", i + 1), st));
            }
        }
        out
    }

    /// SIGTERM to the sentinels, then the servers, each given up to `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), String> {
        let mut errors = Vec::new();
        for (_, p) in &mut self.sentinels {
            if let Err(e) = p.terminate(grace).await {
                errors.push(e);
            }
        }
        for s in &mut self.servers {
            if let Err(e) = s.stop(grace).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// One RESP command on a fresh loopback connection; the reply's lines (a second's timeout).
fn ask(port: u16, args: &[&str]) -> Option<Vec<String>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    (&s).write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    let first = first.trim_end().to_string();
    let mut lines = vec![first.clone()];
    match first.as_bytes().first() {
        // An array of bulk strings (or nil): read its items.
        Some(b'*') => {
            let n: i64 = first[1..].parse().ok()?;
            for _ in 0..n.max(0) {
                let mut len = String::new();
                r.read_line(&mut len).ok()?;
                let mut item = String::new();
                if !len.starts_with("$-1") {
                    r.read_line(&mut item).ok()?;
                }
                lines.push(item.trim_end().to_string());
            }
        }
        Some(b'$') if !first.starts_with("$-1") => {
            let mut body = Vec::new();
            let len: usize = first[1..].parse().ok()?;
            body.resize(len + 2, 0);
            std::io::Read::read_exact(&mut r, &mut body).ok()?;
            lines.extend(String::from_utf8_lossy(&body).lines().map(str::to_string));
        }
        _ => {}
    }
    Some(lines)
}

/// The primary's port as the sentinel on `sentinel` names it.
fn master_on(sentinel: u16) -> Option<u16> {
    let r = ask(
        sentinel,
        &["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER],
    )?;
    (r.first()? == "*2").then(|| r.get(2)?.parse().ok())?
}

/// The sentinel has found the primary's `replicas` replicas and the other sentinels (so it
/// can fail over).
fn sentinel_ready(sentinel: u16, replicas: u32) -> bool {
    let Some(r) = ask(sentinel, &["SENTINEL", "master", SENTINEL_MASTER]) else {
        return false;
    };
    let field = |name: &str| {
        let i = r.iter().position(|l| l == name)?;
        r.get(i + 1)?.parse::<u32>().ok()
    };
    field("num-slaves").is_some_and(|n| n >= replicas) && field("num-other-sentinels") == Some(2)
}

/// The server on `port` is a replica of `primary` and in sync with it.
fn replica_synced(port: u16, primary: u16) -> bool {
    let Some(info) = ask(port, &["INFO", "replication"]) else {
        return false;
    };
    let has = |l: &str| info.iter().any(|x| x == l);
    has("role:slave") && has(&format!("master_port:{primary}")) && has("master_link_status:up")
}
