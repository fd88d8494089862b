//! `gitflock dev`: a whole local cluster in one command.
//!
//! Starts redis-server from PATH on a free port (or uses `--redis URL`), N `gitflock-node`
//! processes with distinct names, ports and data dirs and one fresh cluster token, waits until
//! every node answers, prints where everything is, and on Ctrl-C (or SIGTERM) stops the nodes
//! gracefully, then Redis.

use clap::Args;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

use crate::CliError;
use gitflock_client::Client;
use gitflock_proto::v1::Empty;

#[derive(Args, Clone)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// Use this Redis instead of starting one.
    #[arg(long)]
    pub redis: Option<String>,
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

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| CliError(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| CliError(e.to_string()))?.port())
}

fn port_or_free(want: u16) -> Result<u16> {
    if TcpListener::bind(("127.0.0.1", want)).is_ok() {
        Ok(want)
    } else {
        free_port()
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The node binary: beside this one (cargo puts them together), else on PATH.
fn node_binary() -> Result<PathBuf> {
    if let Ok(me) = std::env::current_exe() {
        let beside = me.with_file_name("gitflock-node");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    find_in_path("gitflock-node")
        .ok_or_else(|| CliError("gitflock-node not found beside gitflock or on PATH".into()))
}

/// The dashboard binary: beside this one, else on PATH.
fn web_binary() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .map(|me| me.with_file_name("gitflock-web"))
        .filter(|p| p.is_file())
        .or_else(|| find_in_path("gitflock-web"))
}

/// Starts the dashboard over `nodes`; returns its URL and password, or why it did not start.
async fn start_web(
    args: &DevArgs,
    data: &Path,
    token: &str,
    nodes: &[String],
    procs: &mut Vec<Proc>,
) -> std::result::Result<(String, String), String> {
    let bin = web_binary().ok_or("gitflock-web not found beside gitflock or on PATH")?;
    let want: std::net::SocketAddr = args
        .web
        .parse()
        .map_err(|_| format!("--web {:?} is not an address like 127.0.0.1:8080", args.web))?;
    let addr = if TcpListener::bind(want).is_ok() {
        want
    } else {
        let l = TcpListener::bind((want.ip(), 0)).map_err(|e| format!("no free port: {e}"))?;
        l.local_addr().map_err(|e| e.to_string())?
    };
    let password = match std::env::var("GITFLOCK_WEB_PASSWORD") {
        Ok(p) if p.len() >= 8 => p,
        _ => uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
    };
    write_private(&data.join("web-password"), &format!("{password}\n")).map_err(|e| e.0)?;
    let log = std::fs::File::create(data.join("web.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .env_remove("GITFLOCK_CONFIG")
        .env_remove("GITFLOCK_WEB_PASSWORD_HASH")
        .env("GITFLOCK_CLUSTER_TOKEN", token)
        .env("GITFLOCK_WEB_NODES", nodes.join(","))
        .env("GITFLOCK_WEB_PASSWORD", &password)
        .env("GITFLOCK_WEB_LISTEN", addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    procs.push(Proc {
        name: "web".into(),
        child,
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Some(p) = procs.iter_mut().find(|p| p.name == "web")
            && let Ok(Some(status)) = p.child.try_wait()
        {
            return Err(format!(
                "gitflock-web exited at start ({status}); see {}",
                data.join("web.log").display()
            ));
        }
        if Instant::now() > deadline {
            return Err("gitflock-web did not listen within 15s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((format!("http://{addr}/"), password))
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

struct Proc {
    name: String,
    child: Child,
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

async fn stop_all(procs: &mut [Proc], grace: Duration) {
    for p in procs.iter() {
        signal(&p.child, libc::SIGTERM);
    }
    for p in procs.iter_mut() {
        match tokio::time::timeout(grace, p.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "{} did not stop in {}s; killing it",
                    p.name,
                    grace.as_secs()
                );
                let _ = p.child.kill().await;
            }
        }
    }
}

async fn wait_redis(port: u16, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError(format!("redis-server exited at start ({status})")));
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if tokio::task::spawn_blocking(move || gitflock_harness::redis_answers(addr))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError("redis-server did not answer within 10s".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(args: DevArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(crate::dev_dir);
    std::fs::create_dir_all(&data)
        .map_err(|e| CliError(format!("cannot create {}: {e}", data.display())))?;
    let data = data.canonicalize().map_err(|e| CliError(e.to_string()))?;
    let node_bin = node_binary()?;
    let token = new_token();

    let mut procs: Vec<Proc> = Vec::new();
    let redis_url = match &args.redis {
        Some(url) => url.clone(),
        None => {
            let bin = find_in_path("redis-server").ok_or_else(|| {
                CliError("redis-server not found on PATH: install it (apt-get install redis-server) or pass --redis URL".into())
            })?;
            let port = free_port()?;
            let dir = data.join("redis");
            std::fs::create_dir_all(&dir).map_err(|e| CliError(e.to_string()))?;
            let log = std::fs::File::create(data.join("redis.log"))
                .map_err(|e| CliError(e.to_string()))?;
            let mut child = Command::new(bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| CliError(e.to_string()))?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| CliError(format!("cannot start redis-server: {e}")))?;
            wait_redis(port, &mut child).await?;
            procs.push(Proc {
                name: "redis-server".into(),
                child,
            });
            format!("redis://127.0.0.1:{port}/0")
        }
    };

    write_private(&data.join("token"), &format!("{token}\n"))?;
    // Blocks of the log chains go to a local bare repository (when git is installed).
    let chain_remote = data.join("chain-remote.git");
    let have_remote = chain_remote.join("HEAD").is_file()
        || std::process::Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(&chain_remote)
            .status()
            .is_ok_and(|s| s.success());
    let mut endpoints = Vec::new();
    for i in 1..=args.nodes {
        let name = format!("node{i}");
        let port = port_or_free(args.base_port.saturating_add(i - 1))?;
        let listen = format!("127.0.0.1:{port}");
        let metrics = format!("127.0.0.1:{}", free_port()?);
        // Each node serves its mirrors with git daemon on a port of its own.
        let serve = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(data.join(format!("{name}.log")))
            .map_err(|e| CliError(e.to_string()))?;
        let child = Command::new(&node_bin)
            .env_remove("GITFLOCK_CONFIG")
            .env("GITFLOCK_NODE_NAME", &name)
            .env("GITFLOCK_NODE_DATA_DIR", data.join(&name))
            .env("GITFLOCK_NODE_GRPC_LISTEN", &listen)
            .env("GITFLOCK_NODE_ADVERTISE", &listen)
            .env("GITFLOCK_NODE_CONCURRENCY", args.concurrency.to_string())
            .env("GITFLOCK_REDIS_URL", &redis_url)
            .env("GITFLOCK_CLUSTER_TOKEN", &token)
            .env(
                "GITFLOCK_CHAIN_REMOTE",
                if have_remote {
                    chain_remote.as_os_str()
                } else {
                    "".as_ref()
                },
            )
            .env("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "300")
            .env("GITFLOCK_NODE_METRICS_LISTEN", &metrics)
            .env("GITFLOCK_MIRROR_SERVE_LISTEN", &serve)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| CliError(e.to_string()))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CliError(format!("cannot start {}: {e}", node_bin.display())))?;
        procs.push(Proc {
            name: name.clone(),
            child,
        });
        endpoints.push((
            name,
            format!("http://{listen}"),
            format!("http://{metrics}/metrics"),
            format!("git://{serve}/"),
        ));
    }
    let env_lines = format!(
        "export GITFLOCK_SERVER={}\nexport GITFLOCK_TOKEN={token}\n",
        endpoints[0].1
    );
    write_private(&data.join("env"), &env_lines)?;

    // Ready when every node answers an authenticated call, and a master is elected.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut master = String::new();
    for (name, url, _, _) in &endpoints {
        loop {
            let ready = async {
                let mut c = Client::connect(url, &token, Some(Duration::from_secs(2))).await?;
                Ok::<_, CliError>(c.nodes.status(Empty {}).await?.into_inner())
            }
            .await;
            if let Ok(s) = ready
                && !s.master.is_empty()
            {
                master = s.master;
                break;
            }
            if let Some(p) = procs.iter_mut().find(|p| &p.name == name)
                && let Ok(Some(status)) = p.child.try_wait()
            {
                let log = data.join(format!("{name}.log"));
                stop_all(&mut procs, Duration::from_secs(10)).await;
                return Err(CliError(format!(
                    "{name} exited at start ({status}); see {}",
                    log.display()
                )));
            }
            if Instant::now() > deadline {
                stop_all(&mut procs, Duration::from_secs(10)).await;
                return Err(CliError(format!("{name} did not become ready within 30s")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let web = if args.web == "off" {
        None
    } else {
        let urls: Vec<String> = endpoints.iter().map(|(_, url, _, _)| url.clone()).collect();
        match start_web(&args, &data, &token, &urls, &mut procs).await {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("dashboard not started: {e}");
                None
            }
        }
    };

    println!("gitflock dev cluster is up");
    println!("  redis:  {redis_url}");
    for (name, url, metrics, mirrors) in &endpoints {
        let role = if *name == master { " (master)" } else { "" };
        println!("  {name}:  {url}{role}");
        println!(
            "          metrics {metrics}   mirrors {mirrors}   log {}",
            data.join(format!("{name}.log")).display()
        );
    }
    if have_remote {
        println!(
            "  blocks: {} (every 5 min; `gitflock block make` now)",
            chain_remote.display()
        );
    }
    if let Some((url, password)) = &web {
        println!("  web:    {url}   password {password}");
        println!(
            "          (in {}; log {})",
            data.join("web-password").display(),
            data.join("web.log").display()
        );
    }
    println!("  token:  {token}");
    println!(
        "          (in {}; the CLI reads it from there when run from this directory)",
        data.join("token").display()
    );
    if endpoints[0].1 != "http://127.0.0.1:6666" {
        println!("  env:    source {}", data.join("env").display());
    }
    println!();
    println!("try:  gitflock task create --type echo --target hello");
    println!("      gitflock task list; gitflock nodes; gitflock status");
    println!("Ctrl-C stops the cluster.");

    // Run until Ctrl-C / SIGTERM; report a node that dies meanwhile.
    let stop = gitflock_core::shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for p in procs.iter_mut() {
                    if let Ok(Some(status)) = p.child.try_wait() {
                        eprintln!("{} exited ({status})", p.name);
                    }
                }
                procs.retain_mut(|p| !matches!(p.child.try_wait(), Ok(Some(_))));
            }
        }
    }
    println!("stopping…");
    // Nodes first (they hand work back and resign), then Redis.
    let redis_idx = procs.iter().position(|p| p.name == "redis-server");
    let mut redis = redis_idx.map(|i| procs.remove(i));
    stop_all(&mut procs, Duration::from_secs(15)).await;
    if let Some(r) = redis.as_mut() {
        stop_all(std::slice::from_mut(r), Duration::from_secs(5)).await;
    }
    println!("stopped");
    Ok(())
}
