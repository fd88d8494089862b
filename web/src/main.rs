//! `gitflock-web`: the dashboard server, and `gitflock-web hash-password`.

use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gitflock-web", version, about = "gitflock's web dashboard")]
struct Cli {
    /// The config file (the nodes' file; its [web] and [cluster] sections are used).
    #[arg(long, env = "GITFLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard (the default).
    Serve,
    /// Read a password on stdin, print its argon2 hash for `[web] password_hash`.
    HashPassword,
}

fn main() {
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        let mut pw = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut pw) {
            eprintln!("gitflock-web: cannot read the password on stdin: {e}");
            std::process::exit(1);
        }
        let pw = pw.trim_end_matches(['\n', '\r']);
        if pw.len() < 8 {
            eprintln!("gitflock-web: the password must be at least 8 characters");
            std::process::exit(2);
        }
        match gitflock_web::auth::hash_password(pw) {
            Ok(h) => println!("{h}"),
            Err(e) => {
                eprintln!("gitflock-web: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    gitflock_core::logging::init(&cli.log_format, "info");
    let cfg = match gitflock_web::config::WebConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gitflock-web: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &cli.config
        && std::fs::read_to_string(path).is_ok_and(|t| {
            t.parse::<toml::Table>()
                .is_ok_and(|tbl| tbl.get("web").and_then(|w| w.get("password")).is_some())
        })
    {
        tracing::warn!(
            "[web] password is stored in plain text in the config file: prefer password_hash (gitflock-web hash-password)"
        );
    }
    let res = actix_web::rt::System::new().block_on(gitflock_web::app::serve(cfg));
    if let Err(e) = res {
        eprintln!("gitflock-web: {e}");
        std::process::exit(1);
    }
}
