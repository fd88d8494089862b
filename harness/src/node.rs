//! One `gitflock-node` process: configured through `GITFLOCK_*` variables, its output in a log
//! file, signalled like an operator or a crash would, restarted with the same name, ports and
//! data directory, and ready once it answers an authenticated gRPC call.

use gitflock_client::Client;
use gitflock_proto::v1::Empty;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::process::{Process, command};
use crate::signal::{SIGCONT, SIGSTOP, SIGTERM};
use crate::tls::ServeTls;
use crate::wait::{Poll, poll_until};

/// How long a restarted node has to answer.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a node is started with; kept, so that a restart starts the same node.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// The `gitflock-node` binary.
    pub program: PathBuf,
    pub name: String,
    /// Its gRPC port on 127.0.0.1 (also the address it advertises).
    pub port: u16,
    pub data_dir: PathBuf,
    /// Its stdout and stderr: truncated at the first start, appended to by restarts.
    pub log: PathBuf,
    pub redis_url: String,
    pub token: String,
    /// Serves `/metrics` on this port (else no metrics endpoint).
    pub metrics_port: Option<u16>,
    /// Serves its mirrors (git daemon) on this port (else the node's default, 9418).
    pub serve_port: Option<u16>,
    /// More `GITFLOCK_*` (or any) variables, set last: they override the ones above.
    pub env: Vec<(String, String)>,
    /// Pass the caller's environment on (`gitflock dev`); else only PATH.
    pub inherit_env: bool,
    /// Serve gRPC over TLS (then its URL is `https://`, and the harness's own calls show the
    /// node's certificate as theirs).
    pub tls: Option<ServeTls>,
}

impl NodeConfig {
    /// `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// How a client reaches it: the CA and a client certificate with TLS, else nothing.
    pub fn client_tls(&self) -> Result<gitflock_client::Tls, String> {
        match &self.tls {
            Some(t) => t.files.client(),
            None => Ok(gitflock_client::Tls::default()),
        }
    }
}

/// A running (or killed, to be restarted) `gitflock-node`; killed (SIGKILL) when dropped.
pub struct NodeProcess {
    config: NodeConfig,
    process: Process,
}

impl NodeProcess {
    /// Starts the node (without waiting for it: see [`NodeProcess::wait_ready`]).
    pub fn spawn(config: NodeConfig) -> Result<NodeProcess, String> {
        let process = spawn(&config, false)?;
        Ok(NodeProcess { config, process })
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn port(&self) -> u16 {
        self.config.port
    }

    pub fn url(&self) -> String {
        self.config.url()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.config.log
    }

    /// Everything it logged so far (empty if the log cannot be read).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.config.log).unwrap_or_default()
    }

    /// The process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// How it ended, once: the first look after it exited on its own reaps it and says how
    /// (`gitflock dev` reports a node that dies); None while it runs and after that.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// A client of its gRPC API with the cluster token; every call times out after 30 s.
    pub async fn client(&self) -> Result<Client, String> {
        Client::connect_with(
            &self.url(),
            &self.config.token,
            Some(Duration::from_secs(30)),
            &self.config.client_tls()?,
        )
        .await
        .map_err(|e| e.0)
    }

    /// Until it answers an authenticated `Nodes.Status`; an error if it exits first (naming
    /// its log) or does not answer within `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let what = format!("{} to answer", self.config.name);
        poll_until(&what, timeout, || self.look(false))
            .await
            .map(|_| ())
    }

    /// One look at the node: Failed if it exited, Ready with its Status's master (which must
    /// be named if `need_master`) once it answers.
    pub(crate) fn look(&mut self, need_master: bool) -> impl Future<Output = Poll<String>> + use<> {
        let exited = self.process.exited().map(|status| {
            format!(
                "{} exited at start ({status}); see {}",
                self.config.name,
                self.config.log.display()
            )
        });
        let (url, token) = (self.url(), self.config.token.clone());
        let tls = self.config.client_tls();
        async move {
            if let Some(e) = exited {
                return Poll::Failed(e);
            }
            let tls = match tls {
                Ok(t) => t,
                Err(e) => return Poll::Failed(e),
            };
            match status_master(&url, &token, &tls).await {
                Some(m) if !need_master || !m.is_empty() => Poll::Ready(m),
                _ => Poll::Pending,
            }
        }
    }

    /// SIGKILL, and reap it (nothing if it is not running).
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGSTOP: the process freezes (a long GC pause, a stalled VM).
    pub fn sigstop(&self) {
        self.process.signal(SIGSTOP);
    }

    pub fn sigcont(&self) {
        self.process.signal(SIGCONT);
    }

    /// SIGTERM, without waiting (see [`NodeProcess::wait_exit`], [`NodeProcess::terminate`]).
    pub fn sigterm(&self) {
        self.process.signal(SIGTERM);
    }

    /// Waits up to `grace` for it to exit; after that it is killed and the error says so.
    pub async fn wait_exit(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.process.wait_exit(grace).await
    }

    /// SIGTERM, then [`NodeProcess::wait_exit`]: a graceful stop.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.process.terminate(grace).await
    }

    /// Kills it if it runs (SIGKILL), starts it again with the same configuration, and waits
    /// until it answers.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.process.kill9();
        self.process = spawn(&self.config, true)?;
        self.wait_ready(RESTART_TIMEOUT).await
    }
}

/// The master that the node at `url` names in `Nodes.Status` (empty: none), or None if it
/// does not answer.
pub(crate) async fn status_master(
    url: &str,
    token: &str,
    tls: &gitflock_client::Tls,
) -> Option<String> {
    let mut c = Client::connect_with(url, token, Some(Duration::from_secs(2)), tls)
        .await
        .ok()?;
    let s = c.nodes.status(Empty {}).await.ok()?;
    Some(s.into_inner().master)
}

fn spawn(c: &NodeConfig, append: bool) -> Result<Process, String> {
    let listen = format!("127.0.0.1:{}", c.port);
    let mut cmd = command(&c.program, c.inherit_env);
    cmd.env("GITFLOCK_NODE_NAME", &c.name)
        .env("GITFLOCK_NODE_DATA_DIR", &c.data_dir)
        .env("GITFLOCK_NODE_GRPC_LISTEN", &listen)
        .env("GITFLOCK_NODE_ADVERTISE", &listen)
        .env("GITFLOCK_REDIS_URL", &c.redis_url)
        .env("GITFLOCK_CLUSTER_TOKEN", &c.token);
    if let Some(p) = c.metrics_port {
        cmd.env("GITFLOCK_NODE_METRICS_LISTEN", format!("127.0.0.1:{p}"));
    }
    if let Some(p) = c.serve_port {
        cmd.env("GITFLOCK_MIRROR_SERVE_LISTEN", format!("127.0.0.1:{p}"));
    }
    if let Some(t) = &c.tls {
        cmd.envs(t.files.node_env(t.client_auth));
    }
    cmd.envs(c.env.iter().map(|(k, v)| (k, v)));
    Process::spawn(&c.name, &mut cmd, Some(&c.log), append)
}
