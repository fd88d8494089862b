//! `gitflock`: the operator CLI, and `gitflock dev`.

use clap::Parser;
use gitflock::cli::{Cli, Command};
use std::process::ExitCode;

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
            Command::Dev(args) => gitflock::cli::dev::run(args).await,
            _ => gitflock::cli::run(cli).await,
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
