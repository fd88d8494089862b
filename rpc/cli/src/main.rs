//! `gitflock`: the operator CLI, a gRPC client of one node (`--server`), and `gitflock dev`,
//! a whole local cluster in one command.
//!
//! Exit codes: 0 ok, 1 error (one line on stderr), 2 usage (clap).

mod args;
mod block;
mod dev;
mod log;
mod mirror;
mod output;
mod task;

use args::{Cli, Command, LogCommand, TaskCommand};
use clap::Parser;
use gitflock_client::{Client, ClientError};
use gitflock_core::task as model;
use gitflock_proto::v1::Empty;
use output::{node_json, print_json, when};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gitflock: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            _ => run(cli).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gitflock: {e}");
            ExitCode::FAILURE
        }
    }
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

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError(e.0)
    }
}

/// Where `gitflock dev` keeps its files, and so its token.
pub fn dev_dir() -> PathBuf {
    std::env::var_os("GITFLOCK_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./data/dev"))
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

/// Runs one CLI command (everything but `dev`).
async fn run(cli: Cli) -> Result<()> {
    let token = token(&cli)?;
    let watching = matches!(
        cli.command,
        Command::Task(TaskCommand::Watch { .. })
            | Command::Log(LogCommand::Read { follow: true, .. })
    );
    let timeout = (!watching).then_some(Duration::from_secs(60));
    let mut c = Client::connect(&cli.server, &token, timeout).await?;
    match cli.command {
        Command::Task(cmd) => task::run(cmd, &mut c, cli.json).await,
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
            for st in model::STATES {
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
                let line: Vec<String> = model::STATES
                    .iter()
                    .map(|st| format!("{}={}", st.as_str_name(), counts[st.as_str_name()]))
                    .collect();
                println!("tasks:  {}", line.join(" "));
            }
            Ok(())
        }
        Command::Log(cmd) => log::run(cmd, &mut c, cli.json).await,
        Command::Block(cmd) => block::run(cmd, &mut c, cli.json).await,
        Command::Mirror(cmd) => mirror::run(cmd, &mut c, cli.json).await,
        Command::Dev(_) => Err(CliError("dev is not a client command".into())),
    }
}
