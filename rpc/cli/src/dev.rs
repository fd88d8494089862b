//! `gitflock dev`: a whole local cluster in one command.
//!
//! Starts redis-server from PATH on a free port (or uses `--redis URL`; or, with `--sentinel`,
//! a primary, a replica and three sentinels that fail over), N `gitflock-node`
//! processes with distinct names, ports and data dirs and one fresh cluster token, and the
//! dashboard; waits until every node answers, prints where everything is, and on Ctrl-C (or
//! SIGTERM) stops the nodes gracefully, then Redis. The processes are the harness's
//! (`gitflock-harness`); the programs are found beside `gitflock`, else on PATH.

use clap::Args;
use gitflock_harness::{Cluster, SentinelOptions, WebConfig, WebProcess, installed};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::CliError;

#[derive(Args, Clone)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// Use this Redis instead of starting one.
    #[arg(long, conflicts_with = "sentinel")]
    pub redis: Option<String>,
    /// Start a Redis that fails over: a primary, a replica and three sentinels (down after
    /// 1 s); the nodes find the primary through the sentinels.
    #[arg(long)]
    pub sentinel: bool,
    /// Where the nodes keep their data, logs and the token.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The first node's gRPC port; the others follow (a taken port is replaced by a free one).
    #[arg(long, default_value_t = 6666)]
    pub base_port: u16,
    /// Tasks each node runs at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u32,
    /// Where the dashboard (gitflock-web) listens; `off` to not start it. A taken port is
    /// replaced by a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub web: String,
}

type Result<T> = std::result::Result<T, CliError>;

/// How long the nodes have to answer, with a master named.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the dashboard has to listen.
const WEB_TIMEOUT: Duration = Duration::from_secs(15);
/// How long each node (and the dashboard) has to stop after Ctrl-C.
const STOP_GRACE: Duration = Duration::from_secs(15);

pub async fn run(args: DevArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(crate::dev_dir);
    std::fs::create_dir_all(&data)
        .map_err(|e| CliError(format!("cannot create {}: {e}", data.display())))?;
    let data = data.canonicalize().map_err(|e| CliError(e.to_string()))?;
    let node_bin = installed("gitflock-node")
        .ok_or_else(|| CliError("gitflock-node not found beside gitflock or on PATH".into()))?;
    if args.redis.is_none() && gitflock_harness::on_path("redis-server").is_none() {
        return Err(CliError("redis-server not found on PATH: install it (apt-get install redis-server) or pass --redis URL".into()));
    }
    let token = new_token();
    write_private(&data.join("token"), &format!("{token}\n"))?;
    // Blocks of the log chains go to a local bare repository (when git is installed).
    let mut cluster = Cluster::builder(&node_bin, &data, &token)
        .nodes(args.nodes.into())
        .base_port(args.base_port)
        .metrics(true)
        .chain_remote(&data.join("chain-remote.git"))
        .inherit_env(true)
        .ready_timeout(READY_TIMEOUT)
        .env("GITFLOCK_NODE_CONCURRENCY", args.concurrency)
        .env("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "300");
    if let Some(url) = &args.redis {
        cluster = cluster.redis_url(url);
    }
    if args.sentinel {
        cluster = cluster.sentinel(SentinelOptions::default());
    }
    let mut cluster = cluster.start().await.map_err(CliError)?;
    let first = cluster.nodes[0].url();
    let env_lines = format!("export GITFLOCK_SERVER={first}\nexport GITFLOCK_TOKEN={token}\n");
    write_private(&data.join("env"), &env_lines)?;
    let master = cluster.master(READY_TIMEOUT).await.unwrap_or_default();

    let mut web = match args.web.as_str() {
        "off" => None,
        listen => match start_web(listen, &data, &cluster).await {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("dashboard not started: {e}");
                None
            }
        },
    };

    let web_shown = web.as_ref().map(|(w, p)| (w, p.as_str()));
    print_summary(&cluster, &master, web_shown, &data);

    until_stopped(&mut cluster, web.as_mut().map(|(w, _)| w)).await;
    println!("stopping…");
    // Nodes first (they hand work back and resign), then Redis; the dashboard meanwhile.
    let web = web.as_mut().map(|(w, _)| w);
    if let Some(w) = &web {
        w.sigterm();
    }
    if let Err(e) = cluster.stop(STOP_GRACE).await {
        eprintln!("{e}");
    }
    if let Some(w) = web
        && let Err(e) = w.wait_exit(STOP_GRACE).await
    {
        eprintln!("{e}");
    }
    println!("stopped");
    Ok(())
}

/// Where everything is: what `gitflock dev` prints once the cluster is up.
fn print_summary(cluster: &Cluster, master: &str, web: Option<(&WebProcess, &str)>, data: &Path) {
    println!("gitflock dev cluster is up");
    // `--redis` may carry a password: shown masked.
    println!(
        "  redis:  {}",
        gitflock_core::redact::redact(&cluster.redis.url())
    );
    if let gitflock_harness::Redis::Sentinel(s) = &cluster.redis {
        println!(
            "          sentinels {} (master name {})",
            s.sentinels(),
            gitflock_harness::SENTINEL_MASTER
        );
        println!(
            "          (kill -9 the primary to see a failover; logs in {})",
            s.dir().display()
        );
    }
    for node in &cluster.nodes {
        let role = if node.name() == master {
            " (master)"
        } else {
            ""
        };
        let c = node.config();
        let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
        println!("  {}:  {}{role}", c.name, c.url());
        println!(
            "          metrics http://127.0.0.1:{}/metrics   mirrors git://127.0.0.1:{}/   log {}",
            port(c.metrics_port),
            port(c.serve_port),
            c.log.display()
        );
    }
    if let Some(remote) = cluster.chain_remote() {
        let remote = remote.display();
        println!("  blocks: {remote} (every 5 min; `gitflock block make` now)");
    }
    if let Some((w, password)) = web {
        println!("  web:    {}   password {password}", w.url("/"));
        println!(
            "          (in {}; log {})",
            data.join("web-password").display(),
            w.log_path().display()
        );
    }
    println!("  token:  {}", cluster.token());
    println!(
        "          (in {}; the CLI reads it from there when run from this directory)",
        data.join("token").display()
    );
    if cluster.nodes[0].url() != "http://127.0.0.1:6666" {
        println!("  env:    source {}", data.join("env").display());
    }
    println!();
    println!("try:  gitflock task create --type echo --target hello");
    println!("      gitflock task list; gitflock nodes; gitflock status");
    println!("Ctrl-C stops the cluster.");
}

/// Runs until Ctrl-C / SIGTERM; reports a process that dies meanwhile.
async fn until_stopped(cluster: &mut Cluster, mut web: Option<&mut WebProcess>) {
    let stop = gitflock_core::shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let web = web.as_mut().and_then(|w| w.exited()).map(|s| ("web".into(), s));
                for (name, status) in cluster.exited().into_iter().chain(web) {
                    eprintln!("{name} exited ({status})");
                }
            }
        }
    }
}

/// Starts the dashboard over the cluster on `listen` (a taken port is replaced by a free one);
/// returns it and its password, or why it did not start.
async fn start_web(
    listen: &str,
    data: &Path,
    cluster: &Cluster,
) -> std::result::Result<(WebProcess, String), String> {
    let program =
        installed("gitflock-web").ok_or("gitflock-web not found beside gitflock or on PATH")?;
    let want: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--web {listen:?} is not an address like 127.0.0.1:8080"))?;
    let password = match std::env::var("GITFLOCK_WEB_PASSWORD") {
        Ok(p) if p.len() >= 8 => p,
        _ => uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
    };
    write_private(&data.join("web-password"), &format!("{password}\n")).map_err(|e| e.0)?;
    let config = WebConfig {
        program,
        nodes: cluster.urls(),
        token: cluster.token().to_string(),
        password: password.clone(),
        listen: gitflock_harness::addr_or_free(want)?,
        log: data.join("web.log"),
        env: Vec::new(),
        inherit_env: true,
    };
    Ok((WebProcess::start(config, WEB_TIMEOUT).await?, password))
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))
}
