//! `gitflock-node`: the node daemon (gRPC server, heartbeats, election, dispatch, workers).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gitflock-node", version, about = "The gitflock node daemon")]
struct Args {
    /// The TOML config file.
    #[arg(long, env = "GITFLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match gitflock_core::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gitflock-node: {e}");
            return ExitCode::from(2);
        }
    };
    gitflock_core::logging::init(&args.log_format, "info");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gitflock-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(gitflock_node::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("gitflock-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
