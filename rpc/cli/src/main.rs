//! `gitflock`: the operator CLI, a gRPC client of one node (`--server`), and `gitflock dev`,
//! a whole local cluster in one command.
//!
//! Exit codes: 0 ok, 1 error (one line on stderr), 2 usage (clap).

mod args;
mod block;
mod cluster;
mod dev;
mod log;
mod mirror;
mod output;
mod server;
mod task;

use args::{Cli, Command, LogCommand, TaskCommand};
use clap::Parser;
use gitflock_client::{Client, ClientError, Tls};
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
            eprintln!("gitflock: {}", output::clean(&e.0));
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
        if let Some(why) = gitflock_client::tls_failure(&s) {
            return CliError(format!("the node refused the TLS connection: {why}"));
        }
        let msg = s.message().replace('\n', " ");
        CliError(match s.code() {
            tonic::Code::Unauthenticated => {
                format!("not allowed: {msg} (check --token / GITFLOCK_TOKEN)")
            }
            _ if server::is_transport(&s) => format!("{}{msg}", server::TRANSPORT),
            tonic::Code::Unavailable if msg.is_empty() || msg.contains("tcp") => {
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
    let tls = Tls::from_files(cli.ca.as_deref(), cli.cert.as_deref(), cli.key.as_deref())?;
    let mut c = Client::connect_with(&cli.server, &token, timeout, &tls).await?;
    let result = match cli.command {
        Command::Task(cmd) => task::run(cmd, &mut c, cli.json).await,
        Command::Nodes => cluster::nodes(&mut c, cli.json).await,
        Command::Status => cluster::status(&mut c, cli.json).await,
        Command::Log(cmd) => log::run(cmd, &mut c, cli.json).await,
        Command::Block(cmd) => block::run(cmd, &mut c, cli.json).await,
        Command::Mirror(cmd) => mirror::run(cmd, &mut c, cli.json).await,
        Command::Dev(_) => Err(CliError("dev is not a client command".into())),
    };
    match result {
        Err(e) => Err(server::explain(&cli.server, e).await),
        ok => ok,
    }
}
