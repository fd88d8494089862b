//! A private `redis-server` on 127.0.0.1 (started from PATH, its files in a directory of its
//! own), a primary or a replica.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::port::free_port;
use crate::process::Process;
use crate::program::on_path;
use crate::wait::{Poll, poll_until};

/// The longest wait for a started redis-server to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`RedisServer`] is started.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// This port on 127.0.0.1 (else a free one).
    pub port: Option<u16>,
    /// Append-only file, fsync'd on every write: a kill -9 of Redis keeps every acknowledged
    /// write. Without it Redis persists nothing (a restart loses everything).
    pub aof: bool,
    /// Where its output goes (else it is discarded).
    pub log: Option<PathBuf>,
    /// A replica of the redis-server on this port of 127.0.0.1 (else a primary).
    pub replica_of: Option<u16>,
}

/// A redis-server process; killed (SIGKILL) when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
    process: Process,
}

impl RedisServer {
    /// Starts redis-server with its files in `dir` (created if missing) and waits until it
    /// answers PING.
    pub async fn start(dir: &Path, options: RedisOptions) -> Result<RedisServer, String> {
        if on_path("redis-server").is_none() {
            return Err(
                "redis-server not found on PATH: install it (apt-get install redis-server)".into(),
            );
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = match options.port {
            Some(p) => p,
            None => free_port()?,
        };
        let process = spawn(port, dir, &options, false)?;
        let mut r = RedisServer {
            port,
            dir: dir.to_path_buf(),
            options,
            process,
        };
        r.wait_ready().await?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// How it ended, once, if it exited on its own (see [`NodeProcess::exited`]).
    ///
    /// [`NodeProcess::exited`]: crate::NodeProcess::exited
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// Kills redis-server (SIGKILL) and starts it again on the same port and directory:
    /// with AOF it comes back with every acknowledged write, without it empty.
    pub async fn kill9_and_restart(&mut self) -> Result<(), String> {
        self.process.kill9();
        self.process = spawn(self.port, &self.dir, &self.options, true)?;
        self.wait_ready().await
    }

    /// Kills redis-server (SIGKILL) and leaves it dead (see [`RedisServer::restart`]).
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts it again on the same port and directory (after [`RedisServer::kill9`]), now as a
    /// replica of the server on port `primary` (None: a primary), and waits until it answers.
    pub async fn restart(&mut self, primary: Option<u16>) -> Result<(), String> {
        self.process.kill9();
        self.options.replica_of = primary;
        self.process = spawn(self.port, &self.dir, &self.options, true)?;
        self.wait_ready().await
    }

    /// SIGTERM (Redis saves nothing: it persists only through the AOF), then waits up to
    /// `grace` (killing it after).
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.process.terminate(grace).await
    }

    /// Until it answers PING; an error if it exits first or does not answer in time.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let process = &mut self.process;
        poll_until("redis-server to answer", START_TIMEOUT, || {
            let exited = process.exited();
            async move {
                if let Some(status) = exited {
                    return Poll::Failed(format!("redis-server exited at start ({status})"));
                }
                let answered = tokio::task::spawn_blocking(move || redis_answers(addr));
                match answered.await {
                    Ok(true) => Poll::Ready(()),
                    _ => Poll::Pending,
                }
            }
        })
        .await
    }
}

fn spawn(port: u16, dir: &Path, o: &RedisOptions, append: bool) -> Result<Process, String> {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .args(["--appendonly", if o.aof { "yes" } else { "no" }])
    .args(["--appendfsync", "always"])
    .arg("--dir")
    .arg(dir);
    if let Some(primary) = o.replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
    }
    Process::spawn("redis-server", &mut cmd, o.log.as_deref(), append)
}

/// True when a Redis server answers `PING` on `addr` within a second (a RESP exchange on a
/// plain socket: the harness links no Redis client). Blocking.
pub fn redis_answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}
