//! The operator CLI, `gitflock`: a gRPC client of one node (`--server`), plus `gitflock dev`.
//!
//! Exit codes: 0 ok, 1 error (one line on stderr), 2 usage (clap).

pub mod dev;

use clap::{Parser, Subcommand};
use gitflock_proto::v1::chain_client::ChainClient;
use gitflock_proto::v1::mirrors_client::MirrorsClient;
use gitflock_proto::v1::nodes_client::NodesClient;
use gitflock_proto::v1::tasks_client::TasksClient;
use gitflock_proto::v1::{
    CreateTaskRequest, Empty, GetTaskRequest, ListTasksRequest, NodeInfo, Task, TaskIds,
    WatchTasksRequest,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::task::{self, rfc3339, task_json};

#[derive(Parser)]
#[command(
    name = "gitflock",
    version,
    about = "Operate a gitflock cluster",
    propagate_version = true
)]
pub struct Cli {
    /// The node to talk to.
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_SERVER",
        default_value = "http://127.0.0.1:6666"
    )]
    pub server: String,
    /// The cluster token (default: the one `gitflock dev` wrote to ./data/dev/token).
    #[arg(long, global = true, env = "GITFLOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create, list, inspect, kill and delete tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The cluster's nodes: name, addr, role, state, epoch, last heartbeat.
    Nodes,
    /// The master, its epoch, the nodes and the task counts.
    Status,
    /// Write, read and verify the node's log chain.
    #[command(subcommand)]
    Log(LogCommand),
    /// Push blocks of the log chains, list them.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Mirror upstream git repositories across the nodes; list them; sync them now.
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Run a whole local cluster: redis-server, N nodes; Ctrl-C stops all of it.
    Dev(dev::DevArgs),
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Append an entry (CONTENT `-`: one entry per line of standard input, written as one unit).
    Write {
        #[arg(long, default_value = "info")]
        level: String,
        /// The entry's time, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        content: String,
    },
    /// Print entries from a height on (1: the first).
    Read {
        #[arg(long, default_value_t = 1)]
        since: u64,
        /// Keep printing new entries.
        #[arg(long)]
        follow: bool,
    },
    /// Check the chain, and that the remote still holds every block.
    Verify,
}

#[derive(Subcommand)]
pub enum MirrorCommand {
    /// Mirror a repository (a recurring `mirror` task, placed by consistent hashing); prints
    /// the task id. Adding a repository again finds the task it already has.
    Add {
        url: String,
        /// Check for changes this often (default: the node's [mirror] interval_secs).
        #[arg(long, default_value_t = 0)]
        interval: u64,
    },
    /// The mirrors: upstream, node, head, last fetch and change, last error, clone URL.
    List {
        /// Only mirrors whose URL contains this text.
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Bring these mirrors up to date now.
    Sync {
        #[arg(required = true)]
        urls: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum BlockCommand {
    /// Push a block now: of one node, or of every live node; waits for the result.
    Make {
        #[arg(long)]
        node: Option<String>,
    },
    /// The blocks pushed, newest first.
    List {
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task; prints its id.
    Create {
        #[arg(long = "type")]
        kind: String,
        #[arg(long, default_value = "")]
        target: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Run again this many seconds after each run (0: once).
        #[arg(long, default_value_t = 0)]
        interval: u64,
        /// Attempts before RUNTIME_ERROR (default: the node's).
        #[arg(long, default_value_t = 0)]
        max_attempts: u32,
        /// Per-run timeout in seconds (default: the node's).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// List tasks, newest first (all pages).
    List {
        /// Only these states (repeatable).
        #[arg(long = "state")]
        states: Vec<String>,
        #[arg(long = "type", default_value = "")]
        kind: String,
        /// Only tasks whose name or target contains this text.
        #[arg(long, default_value = "")]
        text: String,
        /// At most this many tasks.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one task with its results.
    Get { id: String },
    /// Show a task's result history.
    Result { id: String },
    /// Kill tasks (running ones stop, waiting ones never run).
    Kill {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete tasks (running ones are killed first).
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print task changes as they happen (all tasks, or the ids given).
    Watch { ids: Vec<String> },
}

/// A one-line error for the user.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        let msg = s.message().replace('\n', " ");
        CliError(match s.code() {
            tonic::Code::Unauthenticated => {
                format!("not allowed: {msg} (check --token / GITFLOCK_TOKEN)")
            }
            tonic::Code::Unavailable
                if msg.is_empty() || msg.contains("transport") || msg.contains("tcp") =>
            {
                format!("cannot reach the node: {msg}")
            }
            _ => msg,
        })
    }
}

type Result<T> = std::result::Result<T, CliError>;

pub fn init_logging(format: &str, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Where `gitflock dev` keeps its files, and so its token.
pub fn dev_dir() -> PathBuf {
    std::env::var_os("GITFLOCK_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./data/dev"))
}

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// Fails on a token that cannot be sent as a header value.
    pub fn new(token: &str) -> Result<Bearer> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| CliError("the token holds characters that cannot be sent".into()))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// A connection to one node, with the token on every call.
#[derive(Clone)]
pub struct Client {
    pub tasks: TasksClient<Authed>,
    pub nodes: NodesClient<Authed>,
    pub chain: ChainClient<Authed>,
    pub mirrors: MirrorsClient<Authed>,
}

impl Client {
    pub async fn connect(server: &str, token: &str, timeout: Option<Duration>) -> Result<Client> {
        let b = Bearer::new(token)?;
        let mut ep = Endpoint::from_shared(server.to_string())
            .map_err(|_| {
                CliError(format!(
                    "--server {server:?} is not a URL like http://127.0.0.1:6666"
                ))
            })?
            .connect_timeout(Duration::from_secs(3));
        if let Some(t) = timeout {
            ep = ep.timeout(t);
        }
        let channel = ep
            .connect()
            .await
            .map_err(|e| CliError(format!("cannot reach {server}: {}", root_cause(&e))))?;
        Ok(Client {
            tasks: TasksClient::with_interceptor(channel.clone(), b.clone()),
            nodes: NodesClient::with_interceptor(channel.clone(), b.clone()),
            chain: ChainClient::with_interceptor(channel.clone(), b.clone()),
            mirrors: MirrorsClient::with_interceptor(channel, b),
        })
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn token(cli: &Cli) -> Result<String> {
    if let Some(t) = &cli.token {
        return Ok(t.clone());
    }
    let file = dev_dir().join("token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => Err(CliError(
            "no cluster token: pass --token or set GITFLOCK_TOKEN".into(),
        )),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn node_json(n: &NodeInfo) -> Value {
    json!({
        "name": n.name, "addr": n.addr, "role": n.role, "state": n.state, "epoch": n.epoch,
        "last_heartbeat": rfc3339(n.last_heartbeat), "running": n.running,
        "concurrency": n.concurrency, "version": n.version,
    })
}

fn when(ms: i64) -> String {
    match rfc3339(ms) {
        Value::String(s) => s,
        _ => "-".into(),
    }
}

/// Runs one CLI command (everything but `dev`).
pub async fn run(cli: Cli) -> Result<()> {
    let token = token(&cli)?;
    let watching = matches!(
        cli.command,
        Command::Task(TaskCommand::Watch { .. })
            | Command::Log(LogCommand::Read { follow: true, .. })
    );
    let timeout = (!watching).then_some(Duration::from_secs(60));
    let mut c = Client::connect(&cli.server, &token, timeout).await?;
    match cli.command {
        Command::Task(cmd) => run_task(cmd, &mut c, cli.json).await,
        Command::Nodes => {
            let nodes = c.nodes.list_nodes(Empty {}).await?.into_inner().nodes;
            if cli.json {
                print_json(&Value::Array(nodes.iter().map(node_json).collect()));
            } else {
                println!(
                    "{:<20} {:<22} {:<7} {:<8} {:>6}  LAST_HEARTBEAT",
                    "NAME", "ADDR", "ROLE", "STATE", "EPOCH"
                );
                for n in nodes {
                    println!(
                        "{:<20} {:<22} {:<7} {:<8} {:>6}  {}",
                        n.name,
                        n.addr,
                        n.role,
                        n.state,
                        n.epoch,
                        when(n.last_heartbeat)
                    );
                }
            }
            Ok(())
        }
        Command::Status => {
            let s = c.nodes.status(Empty {}).await?.into_inner();
            let mut counts = serde_json::Map::new();
            for st in task::STATES {
                let name = st.as_str_name();
                counts.insert(name.into(), json!(s.counts.get(name).copied().unwrap_or(0)));
            }
            if cli.json {
                print_json(&json!({
                    "master": s.master, "epoch": s.epoch,
                    "nodes": s.nodes.iter().map(node_json).collect::<Vec<_>>(),
                    "counts": counts, "type_counts": s.type_counts,
                }));
            } else {
                let master = if s.master.is_empty() {
                    "(none)"
                } else {
                    s.master.as_str()
                };
                println!("master: {master} (epoch {})", s.epoch);
                let alive = s.nodes.iter().filter(|n| n.state == "alive").count();
                println!("nodes:  {} ({} alive)", s.nodes.len(), alive);
                let line: Vec<String> = task::STATES
                    .iter()
                    .map(|st| format!("{}={}", st.as_str_name(), counts[st.as_str_name()]))
                    .collect();
                println!("tasks:  {}", line.join(" "));
            }
            Ok(())
        }
        Command::Log(cmd) => run_log(cmd, &mut c, cli.json).await,
        Command::Block(cmd) => run_block(cmd, &mut c, cli.json).await,
        Command::Mirror(cmd) => run_mirror(cmd, &mut c, cli.json).await,
        Command::Dev(_) => Err(CliError("dev is not a client command".into())),
    }
}

async fn run_task(cmd: TaskCommand, c: &mut Client, as_json: bool) -> Result<()> {
    match cmd {
        TaskCommand::Create {
            kind,
            target,
            name,
            interval,
            max_attempts,
            timeout,
        } => {
            let req = CreateTaskRequest {
                name,
                r#type: kind,
                target,
                interval_secs: interval,
                max_attempts,
                timeout_secs: timeout,
                // Retries of this one command create one task.
                request_id: task::new_id(),
            };
            let mut tries = 0;
            let t = loop {
                match c.tasks.create_task(req.clone()).await {
                    Ok(r) => break r.into_inner(),
                    Err(s) if s.code() == tonic::Code::Unavailable && tries < 3 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(300 * tries)).await;
                    }
                    Err(s) => return Err(s.into()),
                }
            };
            if as_json {
                print_json(&task_json(&t));
            } else {
                println!("{}", t.id);
            }
            Ok(())
        }
        TaskCommand::List {
            states,
            kind,
            text,
            limit,
        } => {
            let mut state_nums = Vec::new();
            for s in &states {
                let st = task::parse_state(s).ok_or_else(|| {
                    CliError(format!(
                        "unknown state {s:?}; states: {}",
                        task::STATES.map(|s| s.as_str_name()).join(", ")
                    ))
                })?;
                state_nums.push(st as i32);
            }
            let mut all: Vec<Task> = Vec::new();
            let mut token = String::new();
            let cap = limit.unwrap_or(usize::MAX);
            loop {
                let page = c
                    .tasks
                    .list_tasks(ListTasksRequest {
                        states: state_nums.clone(),
                        r#type: kind.clone(),
                        text: text.clone(),
                        page_size: (cap - all.len()).min(1000) as u32,
                        page_token: token,
                        with_results: as_json,
                    })
                    .await?
                    .into_inner();
                all.extend(page.tasks);
                token = page.next_page_token;
                if token.is_empty() || all.len() >= cap {
                    break;
                }
            }
            all.truncate(cap);
            if as_json {
                print_json(&Value::Array(all.iter().map(task_json).collect()));
            } else {
                println!(
                    "{:<36} {:<13} {:<8} {:<16} {:>5}  {:<24} NAME",
                    "ID", "STATE", "TYPE", "NODE", "RUNS", "UPDATED"
                );
                for t in &all {
                    println!(
                        "{:<36} {:<13} {:<8} {:<16} {:>5}  {:<24} {}",
                        t.id,
                        t.state().as_str_name(),
                        t.r#type,
                        t.node,
                        t.runs,
                        when(t.updated_at),
                        t.name
                    );
                }
            }
            Ok(())
        }
        TaskCommand::Get { id } => {
            let t = c.tasks.get_task(GetTaskRequest { id }).await?.into_inner();
            if as_json {
                print_json(&task_json(&t));
            } else {
                print_task(&t);
            }
            Ok(())
        }
        TaskCommand::Result { id } => {
            let r = c
                .tasks
                .get_task_result(GetTaskRequest { id })
                .await?
                .into_inner();
            if as_json {
                print_json(&json!({
                    "id": r.id, "state": r.state().as_str_name(),
                    "results": r.results.iter().map(task::result_json).collect::<Vec<_>>(),
                }));
            } else {
                println!("{} {}", r.id, r.state().as_str_name());
                for res in &r.results {
                    print_result(res);
                }
            }
            Ok(())
        }
        TaskCommand::Kill { ids } => {
            let r = c
                .tasks
                .kill_tasks(TaskIds { ids: ids.clone() })
                .await?
                .into_inner();
            per_id(&ids, &r, as_json, "killed")
        }
        TaskCommand::Delete { ids } => {
            let r = c
                .tasks
                .delete_tasks(TaskIds { ids: ids.clone() })
                .await?
                .into_inner();
            per_id(&ids, &r, as_json, "deleted")
        }
        TaskCommand::Watch { ids } => {
            let mut stream = c
                .tasks
                .watch_tasks(WatchTasksRequest { ids })
                .await?
                .into_inner();
            while let Some(ev) = stream.message().await? {
                let Some(t) = ev.task else { continue };
                let deleted = ev.kind == gitflock_proto::v1::task_event::Kind::Deleted as i32;
                if as_json {
                    let mut v = if deleted {
                        json!({"id": t.id})
                    } else {
                        task_json(&t)
                    };
                    v["event"] = json!(if deleted { "deleted" } else { "changed" });
                    println!("{v}");
                } else if deleted {
                    println!("{} DELETED", t.id);
                } else {
                    println!(
                        "{} {:<13} {:<8} {:<16} {}",
                        t.id,
                        t.state().as_str_name(),
                        t.r#type,
                        t.node,
                        t.name
                    );
                }
            }
            Ok(())
        }
    }
}

fn per_id(
    ids: &[String],
    r: &gitflock_proto::v1::OptResult,
    as_json: bool,
    verb: &str,
) -> Result<()> {
    if as_json {
        print_json(&json!({"results": r.results, "errors": r.errors}));
    } else {
        for id in ids {
            match r.results.get(id) {
                Some(true) => println!("{id}: {verb}"),
                _ => println!(
                    "{id}: {}",
                    r.errors.get(id).map(String::as_str).unwrap_or("failed")
                ),
            }
        }
    }
    let failed = ids
        .iter()
        .filter(|id| r.results.get(*id) != Some(&true))
        .count();
    if failed > 0 {
        return Err(CliError(format!("{failed} of {} not {verb}", ids.len())));
    }
    Ok(())
}

fn print_task(t: &Task) {
    println!("id:           {}", t.id);
    println!("name:         {}", t.name);
    println!("type:         {}", t.r#type);
    println!("target:       {}", t.target);
    println!("state:        {}", t.state().as_str_name());
    println!(
        "node:         {}",
        if t.node.is_empty() { "-" } else { &t.node }
    );
    println!("attempts:     {} of {}", t.attempts, t.max_attempts);
    println!(
        "interval:     {}",
        if t.interval_secs > 0 {
            format!("{}s", t.interval_secs)
        } else {
            "once".into()
        }
    );
    println!("runs:         {}", t.runs);
    println!("created_at:   {}", when(t.created_at));
    println!("updated_at:   {}", when(t.updated_at));
    if t.due_at > 0 {
        println!("due_at:       {}", when(t.due_at));
    }
    for r in &t.results {
        print_result(r);
    }
}

fn print_result(r: &gitflock_proto::v1::TaskResult) {
    let code = match r.code {
        task::code::OK => "ok",
        task::code::TIMEOUT => "timeout",
        task::code::KILLED => "killed",
        _ => "error",
    };
    println!(
        "  [{}] attempt {} on {} ({code}): {}",
        when(r.finished_at),
        r.attempt,
        r.node,
        r.message.replace('\n', " ")
    );
}

async fn run_log(cmd: LogCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{LogEntry, ReadLogsRequest, VerifyRequest};
    match cmd {
        LogCommand::Write { level, at, content } => {
            let at = at.unwrap_or_default();
            let r = if content == "-" {
                use std::io::BufRead;
                let mut entries = Vec::new();
                for line in std::io::stdin().lock().lines() {
                    let line =
                        line.map_err(|e| CliError(format!("cannot read standard input: {e}")))?;
                    if !line.trim().is_empty() {
                        entries.push(LogEntry {
                            level: level.clone(),
                            content: line,
                            create_at: at.clone(),
                        });
                    }
                }
                if entries.is_empty() {
                    return Err(CliError("no entries on standard input".into()));
                }
                c.chain
                    .write_logs(tokio_stream::iter(entries))
                    .await?
                    .into_inner()
            } else {
                c.chain
                    .write_log(LogEntry {
                        level,
                        content,
                        create_at: at,
                    })
                    .await?
                    .into_inner()
            };
            if as_json {
                print_json(
                    &json!({"first_height": r.first_height, "last_height": r.last_height, "count": r.count}),
                );
            } else if r.count == 1 {
                println!("{}", r.first_height);
            } else {
                println!(
                    "{}..{} ({} entries)",
                    r.first_height, r.last_height, r.count
                );
            }
            Ok(())
        }
        LogCommand::Read { since, follow } => {
            let mut s = c
                .chain
                .read_logs(ReadLogsRequest {
                    since,
                    since_time: String::new(),
                    follow,
                    limit: 0,
                    tail: 0,
                })
                .await?
                .into_inner();
            while let Some(e) = s.message().await? {
                if as_json {
                    println!(
                        "{}",
                        json!({"height": e.height, "commit": e.commit, "create_at": e.create_at, "level": e.level, "content": e.content})
                    );
                } else {
                    println!(
                        "{:>8} {} [{}] {}",
                        e.height, e.create_at, e.level, e.content
                    );
                }
            }
            Ok(())
        }
        LogCommand::Verify => {
            let v = c.chain.verify_chain(VerifyRequest {}).await?.into_inner();
            if as_json {
                print_json(&json!({
                    "ok": v.ok, "node": v.node, "height": v.height, "blocks_checked": v.blocks_checked,
                    "bad_height": if v.has_bad_height { json!(v.bad_height) } else { Value::Null },
                    "bad_commit": v.bad_commit, "problem": v.problem,
                }));
            } else if v.ok {
                println!(
                    "chain of {} is intact: {} entries, {} blocks checked",
                    v.node, v.height, v.blocks_checked
                );
            }
            if !v.ok {
                let at = if v.has_bad_height {
                    format!(" at height {}", v.bad_height)
                } else {
                    String::new()
                };
                return Err(CliError(format!(
                    "chain of {} is broken{at} ({}): {}",
                    v.node, v.bad_commit, v.problem
                )));
            }
            Ok(())
        }
    }
}

/// A mirror's JSON form (`mirror list --json`).
pub fn mirror_json(m: &gitflock_proto::v1::Mirror) -> Value {
    json!({
        "url": m.url, "node": m.node, "path": m.path, "clone_url": m.clone_url, "head": m.head,
        "last_fetch": rfc3339(m.last_fetch), "last_change": rfc3339(m.last_change),
        "last_error": m.last_error, "task_id": m.task_id, "state": task::state_name(m.state()),
        "interval_secs": m.interval_secs, "refs": m.refs, "failures": m.failures,
        "next_run": rfc3339(m.next_run),
    })
}

async fn run_mirror(cmd: MirrorCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{CreateTaskRequest, ListMirrorsRequest, SyncMirrorsRequest};
    match cmd {
        MirrorCommand::Add { url, interval } => {
            let t = c
                .tasks
                .create_task(CreateTaskRequest {
                    name: String::new(),
                    r#type: "mirror".into(),
                    target: url,
                    interval_secs: interval,
                    request_id: task::new_id(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if as_json {
                print_json(&task_json(&t));
            } else {
                println!("{}", t.id);
            }
        }
        MirrorCommand::List { text } => {
            let mut all = Vec::new();
            let mut token = String::new();
            let mut list = None;
            loop {
                let page = c
                    .mirrors
                    .list_mirrors(ListMirrorsRequest {
                        text: text.clone(),
                        page_size: 1000,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                all.extend(page.mirrors);
                list = list.or(page.list);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if as_json {
                print_json(&Value::Array(all.iter().map(mirror_json).collect()));
                return Ok(());
            }
            if let Some(l) = list {
                println!(
                    "upstream list {}: {} entries at {} (synced {}){}",
                    l.url,
                    l.entries,
                    if l.commit.is_empty() {
                        "-"
                    } else {
                        &l.commit[..l.commit.len().min(12)]
                    },
                    when(l.last_sync),
                    if l.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", l.last_error)
                    }
                );
            }
            if all.is_empty() {
                println!("no mirrors yet: gitflock mirror add URL");
            }
            for m in &all {
                println!(
                    "{}  {}  node={}  head={}  fetched={}  changed={}{}\n    {}",
                    m.url,
                    task::state_name(m.state()),
                    if m.node.is_empty() { "-" } else { &m.node },
                    if m.head.is_empty() { "-" } else { &m.head },
                    when(m.last_fetch),
                    when(m.last_change),
                    if m.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("  error: {}", m.last_error)
                    },
                    if m.clone_url.is_empty() {
                        "(not cloned yet)"
                    } else {
                        &m.clone_url
                    },
                );
            }
        }
        MirrorCommand::Sync { urls } => {
            let r = c
                .mirrors
                .sync_mirrors(SyncMirrorsRequest { urls })
                .await?
                .into_inner();
            if as_json {
                print_json(&json!({"synced": r.synced, "unknown": r.unknown}));
            } else {
                for id in &r.synced {
                    println!("syncing {id}");
                }
                for u in &r.unknown {
                    eprintln!("no mirror of {u}");
                }
            }
            if !r.unknown.is_empty() {
                return Err(CliError(format!(
                    "{} URL(s) match no mirror",
                    r.unknown.len()
                )));
            }
        }
    }
    Ok(())
}

async fn run_block(cmd: BlockCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{ListBlocksRequest, MakeBlockRequest};
    match cmd {
        BlockCommand::Make { node } => {
            let t = c
                .chain
                .make_block(MakeBlockRequest {
                    node: node.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let cur = c
                    .tasks
                    .get_task(GetTaskRequest { id: t.id.clone() })
                    .await?
                    .into_inner();
                if task::is_final(cur.state()) {
                    if as_json {
                        print_json(&task_json(&cur));
                    } else if let Some(r) = cur.results.first() {
                        println!("{}", r.message);
                    }
                    if cur.state() != gitflock_proto::v1::TaskState::Succeed {
                        let why = cur
                            .results
                            .first()
                            .map(|r| r.message.clone())
                            .unwrap_or_default();
                        return Err(CliError(format!("block failed: {why}")));
                    }
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    return Err(CliError(format!(
                        "block task {} did not finish within 120s",
                        t.id
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        BlockCommand::List { node } => {
            let blocks = c
                .chain
                .list_blocks(ListBlocksRequest {
                    node: node.unwrap_or_default(),
                    limit: 0,
                })
                .await?
                .into_inner()
                .blocks;
            if as_json {
                print_json(&Value::Array(
                    blocks
                        .iter()
                        .map(|b| json!({"node": b.node, "branch": b.branch, "tip": b.tip, "height": b.height, "pushed_at": rfc3339(b.pushed_at)}))
                        .collect(),
                ));
            } else {
                println!(
                    "{:<16} {:<28} {:>8}  {:<40} PUSHED_AT",
                    "NODE", "BRANCH", "HEIGHT", "TIP"
                );
                for b in blocks {
                    println!(
                        "{:<16} {:<28} {:>8}  {:<40} {}",
                        b.node,
                        b.branch,
                        b.height,
                        b.tip,
                        when(b.pushed_at)
                    );
                }
            }
            Ok(())
        }
    }
}
