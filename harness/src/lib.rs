//! gitflock-harness: a local gitflock cluster of real processes — redis-server on a free
//! port, `gitflock-node` processes, the dashboard — and waiting on it with deadlines.
//!
//! Used by `gitflock dev`, the integration tests of the node and the dashboard, and the
//! benchmark driver, so there is one way to start a cluster. It links neither Redis nor git:
//! readiness is asked of the processes themselves (a RESP `PING`, a gRPC call). Errors are
//! one line for people (`Result<_, String>`); only the helpers marked test-only panic.
//!
//! - `cluster/`: [`Cluster`], Redis + N nodes (names, ports, token), ready when every node
//!   answers and a master is named; `cluster/builder.rs`: [`ClusterBuilder`], how one is
//!   asked for and started.
//! - `redis_server.rs`: [`RedisServer`], a private redis-server (AOF or none, or a replica),
//!   kill -9 and restart on the same port and dir;
//! - `sentinel.rs`: [`SentinelRedis`], a primary, replicas and three sentinels (kill -9 the
//!   primary, wait for the promotion, restart the old one as a replica);
//! - `cluster_redis.rs`: [`Redis`], the Redis a cluster runs on: one of those, or one given
//!   by URL.
//! - `node.rs`: [`NodeProcess`], one `gitflock-node`: its log, signals, restart, readiness.
//! - `web.rs`: [`WebProcess`], the dashboard `gitflock-web`.
//! - `tls.rs`: [`CertAuthority`] (a throwaway CA and certificates, with the `openssl` CLI),
//!   [`ServeTls`] (nodes over TLS), [`TlsRedis`] (a redis-server on TLS with an ACL user),
//!   [`TlsSentinel`] (a Sentinel on TLS watching it).
//! - `process.rs`: what the three share: spawn with a log file, signal, reap once, kill on
//!   drop.
//! - `wait.rs`: polling with a deadline ([`poll_until`]; [`wait_for`] for tests);
//!   `signal.rs`: kill(2); `port.rs`: free ports.
//! - `program.rs`: installed programs (beside the running executable, or on PATH), for
//!   `gitflock dev`; `binary.rs`: the workspace's binaries for tests, built when stale.

mod binary;
mod cluster;
mod cluster_redis;
mod node;
mod port;
mod process;
mod program;
mod redis_server;
mod sentinel;
mod signal;
mod tls;
mod wait;
mod web;

pub use binary::binary;
pub use cluster::{Cluster, ClusterBuilder};
pub use cluster_redis::Redis;
pub use node::{NodeConfig, NodeProcess};
pub use port::{addr_or_free, free_port, port_or_free};
pub use program::{installed, on_path};
pub use redis_server::{RedisOptions, RedisServer, redis_answers};
pub use sentinel::{SENTINEL_MASTER, SentinelOptions, SentinelRedis};
pub use signal::{SIGCONT, SIGINT, SIGKILL, SIGSTOP, SIGTERM, send_signal};
pub use tls::{CertAuthority, ServeTls, TlsFiles, TlsRedis, TlsSentinel};
pub use wait::{Poll, poll_until, wait_for};
pub use web::{WebConfig, WebProcess};
