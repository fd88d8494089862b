//! [`Conn`]: what every store method sends its commands through.
//!
//! With `[redis] url` it is the connection manager of the one Redis, as before (no wrapper
//! work on that path). With sentinels it is the manager of whichever server the sentinels name
//! primary now ([`Primary`]); an error that says the primary moved or died (a dropped or
//! refused connection, `READONLY` from a demoted primary) asks the sentinels again at once.
//!
//! A write that must survive the primary's loss (`[redis] min_replicas_ack` > 0) goes through
//! [`Conn::acked`]: the command and `WAIT <replicas> <timeout>` leave in one pipeline on the
//! same connection, so the WAIT covers exactly that write, and a write that fewer replicas
//! took is an error (`NOTREPLICATED`) even though the primary applied it — the caller retries
//! it, which every write here allows (request ids, fences, claim numbers). Such writes get a
//! connection of their own ([`Lane::Acked`]): WAIT blocks its connection, and heartbeats and
//! reads must not queue behind it. There are [`ACKED_LANES`] of them, taken in turn, so that
//! several WAITs are in flight at once (one round of replica acknowledgements answers them
//! all) instead of every acknowledged write queueing behind the one before.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::Arc;
use std::time::Duration;

use super::sentinel::Primary;

/// The error code of a write that fewer replicas than asked acknowledged.
pub const NOT_REPLICATED: &str = "NOTREPLICATED";

/// How long a WAIT waits for the replicas. It blocks its (acked-writes-only) connection, so it
/// is short; a write that times out is retried by its caller.
const WAIT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Connections for writes followed by WAIT (per server).
pub const ACKED_LANES: usize = 4;

/// Which of a server's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Reads, heartbeats, and writes that need no replica.
    Commands,
    /// Writes followed by WAIT: one of [`ACKED_LANES`].
    Acked(usize),
}

impl Lane {
    /// How many lanes a server has.
    pub const COUNT: usize = 1 + ACKED_LANES;

    /// Its place among a server's lanes (`0..COUNT`).
    pub fn index(self) -> usize {
        match self {
            Lane::Commands => 0,
            Lane::Acked(i) => 1 + i % ACKED_LANES,
        }
    }
}

#[derive(Clone)]
enum Route {
    Direct(ConnectionManager),
    Primary(Arc<Primary>, Lane),
}

#[derive(Clone)]
pub struct Conn {
    route: Route,
    /// Replicas each command must reach before its reply counts (0: none).
    replicas: u32,
}

impl Conn {
    pub fn direct(manager: ConnectionManager) -> Conn {
        Conn {
            route: Route::Direct(manager),
            replicas: 0,
        }
    }

    pub fn primary(primary: Arc<Primary>, lane: Lane) -> Conn {
        Conn {
            route: Route::Primary(primary, lane),
            replicas: 0,
        }
    }

    /// This connection with every command followed by `WAIT replicas` (0: unchanged).
    pub fn acked(mut self, replicas: u32) -> Conn {
        self.replicas = replicas;
        self
    }

    fn manager(&self) -> ConnectionManager {
        match &self.route {
            Route::Direct(m) => m.clone(),
            Route::Primary(p, lane) => p.manager(lane.index()),
        }
    }

    /// After a reply or an error: if it says the primary is gone or demoted, look again.
    fn check(&self, failed: Option<&redis::RedisError>, replies: &[Value]) {
        let Route::Primary(p, _) = &self.route else {
            return;
        };
        let moved = failed.is_some_and(|e| {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || read_only(e.code())
        }) || replies.iter().any(|v| match v {
            Value::ServerError(e) => read_only(Some(e.code())),
            _ => false,
        });
        if moved {
            p.suspect();
        }
    }
}

/// A demoted primary (now a replica) refuses writes with READONLY.
fn read_only(code: Option<&str>) -> bool {
    code.is_some_and(|c| c == "READONLY")
}

/// `cmd` then WAIT, in one pipeline on one connection; the command's reply, or
/// `NOTREPLICATED` when fewer than `replicas` replicas acknowledged it.
async fn with_wait(m: &mut ConnectionManager, cmd: &Cmd, replicas: u32) -> RedisResult<Value> {
    let mut p = redis::pipe();
    p.add_command(cmd.clone())
        .cmd("WAIT")
        .arg(replicas)
        .arg(WAIT_TIMEOUT.as_millis() as u64);
    let mut replies = m.req_packed_commands(&p, 0, 2).await?;
    let (Some(acks), Some(reply)) = (replies.pop(), replies.pop()) else {
        return Err(redis::make_extension_error(
            "MALFORMED".into(),
            Some("WAIT: two replies expected".into()),
        ));
    };
    // The command's own error (NOSCRIPT, NOTMASTER…) comes first: the caller handles it.
    let reply = reply.extract_error()?;
    match acks {
        Value::Int(n) if n >= i64::from(replicas) => Ok(reply),
        Value::Int(n) => Err(redis::make_extension_error(
            NOT_REPLICATED.into(),
            Some(format!("{n} of {replicas} replicas acknowledged the write")),
        )),
        other => Err(other
            .extract_error()
            .err()
            .unwrap_or_else(|| redis::make_extension_error("MALFORMED".into(), None))),
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let plain = self.replicas == 0 && matches!(self.route, Route::Direct(_));
        Box::pin(async move {
            if plain && let Route::Direct(m) = &mut self.route {
                // The plain path: what the connection manager's own impl does.
                return m.send_packed_command(cmd).await;
            }
            let mut m = self.manager();
            let r = if self.replicas == 0 {
                m.req_packed_command(cmd).await
            } else {
                with_wait(&mut m, cmd, self.replicas).await
            };
            match &r {
                Ok(v) => self.check(None, std::slice::from_ref(v)),
                Err(e) => self.check(Some(e), &[]),
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let plain = self.replicas == 0 && matches!(self.route, Route::Direct(_));
        Box::pin(async move {
            if plain && let Route::Direct(m) = &mut self.route {
                return m.send_packed_commands(pipeline, offset, count).await;
            }
            let mut m = self.manager();
            let r = m.req_packed_commands(pipeline, offset, count).await;
            match &r {
                Ok(v) => self.check(None, v),
                Err(e) => self.check(Some(e), &[]),
            }
            let replies = r?;
            if self.replicas > 0 {
                // The store sends no acknowledged pipelines; should one come, WAIT after it
                // all, on the same manager.
                with_wait(&mut m, &redis::cmd("PING"), self.replicas).await?;
            }
            Ok(replies)
        })
    }

    fn get_db(&self) -> i64 {
        self.manager().get_db()
    }
}
