//! The dashboard, `gitflock-web`, over a cluster's nodes; ready once it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::process::{Process, command};
use crate::signal::SIGTERM;

/// How often the dashboard's port is tried while it starts.
const POLL: Duration = Duration::from_millis(20);

/// Everything the dashboard is started with.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The `gitflock-web` binary.
    pub program: PathBuf,
    /// The gRPC URLs of the nodes it talks to.
    pub nodes: Vec<String>,
    pub token: String,
    /// The login password.
    pub password: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Its stdout and stderr (truncated first).
    pub log: PathBuf,
    /// More variables, set last: they override the ones above.
    pub env: Vec<(String, String)>,
    /// Pass the caller's environment on (`gitflock dev`: minus a password hash, since the
    /// password is set here); else only PATH.
    pub inherit_env: bool,
}

/// A running `gitflock-web`; killed (SIGKILL) when dropped.
pub struct WebProcess {
    config: WebConfig,
    process: Process,
}

impl WebProcess {
    /// Starts the dashboard and waits until it listens; an error if it exits first (naming its
    /// log) or does not listen within `timeout`.
    pub async fn start(config: WebConfig, timeout: Duration) -> Result<WebProcess, String> {
        let mut cmd = command(&config.program, config.inherit_env);
        if config.inherit_env {
            cmd.env_remove("GITFLOCK_WEB_PASSWORD_HASH");
        }
        cmd.env("GITFLOCK_CLUSTER_TOKEN", &config.token)
            .env("GITFLOCK_WEB_NODES", config.nodes.join(","))
            .env("GITFLOCK_WEB_PASSWORD", &config.password)
            .env("GITFLOCK_WEB_LISTEN", config.listen.to_string())
            .envs(config.env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn("gitflock-web", &mut cmd, Some(&config.log), false)?;
        let mut web = WebProcess { config, process };
        let deadline = Instant::now() + timeout;
        while tokio::net::TcpStream::connect(web.config.listen)
            .await
            .is_err()
        {
            if let Some(status) = web.process.exited() {
                return Err(format!(
                    "gitflock-web exited at start ({status}); see {}",
                    web.config.log.display()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "gitflock-web did not listen within {}s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(web)
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// `http://<addr><path>` (`path` starts with `/`, or is empty).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.listen)
    }

    pub fn log_path(&self) -> &Path {
        &self.config.log
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.config.log).unwrap_or_default()
    }

    /// How it ended, once, if it exited on its own (see [`crate::NodeProcess::exited`]).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// SIGTERM, without waiting.
    pub fn sigterm(&self) {
        self.process.signal(SIGTERM);
    }

    /// Waits up to `grace` for it to exit; after that it is killed and the error says so.
    pub async fn wait_exit(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.process.wait_exit(grace).await
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
    }
}
