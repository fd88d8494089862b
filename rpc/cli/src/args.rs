//! The command line, as clap reads it: every command, flag and its help.
//!
//! Values with a fixed set (task types, states, levels) are checked here, so a wrong one is a
//! usage error (exit 2) that lists the right ones, before any node is asked. Durations take
//! the one syntax of `gitflock_core::duration`: `500ms`, `30s`, `5m`, `2h`, or bare seconds.

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};
use gitflock_core::log_entry::LEVELS;
use gitflock_core::task::{KNOWN_TYPES, STATES};

use crate::dev;

const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "gitflock",
    version,
    about = "Operate a gitflock cluster",
    propagate_version = true,
    after_help = "Exit status: 0 ok, 1 error (one line on stderr), 2 usage.\n\
                  Durations: 500ms, 30s, 5m, 2h, or a bare number of seconds."
)]
pub struct Cli {
    /// The node to talk to: host:port or http(s)://host:port.
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_SERVER",
        hide_env_values = true,
        default_value = "http://127.0.0.1:6666",
        help_heading = GLOBAL
    )]
    pub server: String,
    /// The cluster token (default: the one `gitflock dev` wrote to ./data/dev/token).
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_TOKEN",
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub token: Option<String>,
    /// The CA certificate (PEM) that signs the nodes' certificates: needed for https://
    /// nodes (a bare host:port is then dialled over TLS).
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_CA",
        value_name = "FILE",
        help_heading = GLOBAL
    )]
    pub ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for nodes with [tls] client_auth = true (with --key).
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_CERT",
        value_name = "FILE",
        requires = "key",
        help_heading = GLOBAL
    )]
    pub cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        env = "GITFLOCK_KEY",
        value_name = "FILE",
        requires = "cert",
        help_heading = GLOBAL
    )]
    pub key: Option<std::path::PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create, list, inspect, watch, kill and delete tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The cluster's nodes: name, address, role, state, epoch, load, metrics address, last
    /// heartbeat (sorted by name).
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
    /// Run a whole local cluster: redis-server, N nodes, the dashboard; Ctrl-C stops all of it.
    Dev(dev::DevArgs),
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Append entries: one entry per line of CONTENT (or of standard input when CONTENT is
    /// `-`), written as one unit; empty lines are skipped and counted. Prints the height
    /// written (FIRST..LAST for several).
    Write {
        /// The entries' level.
        #[arg(long, default_value = "info", ignore_case = true,
              value_parser = PossibleValuesParser::new(LEVELS))]
        level: String,
        /// The entries' time, RFC 3339 such as 2026-01-02T03:04:05Z (default: now). Never
        /// before the chain's newest entry.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// The text: each line one entry; `-` reads the lines from standard input.
        content: String,
    },
    /// Print entries from a height on, one line each: newlines, tabs and other control
    /// characters in the content print as \n, \t, \x1b… (--json for the exact text).
    Read {
        /// The first height to print; 0 and 1 both mean the first entry.
        #[arg(long, default_value_t = 1, value_name = "HEIGHT")]
        since: u64,
        /// Keep printing new entries as they are written (until Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Check the chain, and that the remote still holds every block.
    Verify,
}

#[derive(Subcommand)]
pub enum MirrorCommand {
    /// Mirror a repository (a recurring `mirror` task, placed by consistent hashing); prints
    /// the task id. Adding a repository again finds the task it already has, and says so.
    Add {
        /// The upstream: https://, http://, git://, ssh:// or user@host:path.
        url: String,
        /// Check for changes this often: 30s, 5m, 2h or seconds (default: the node's
        /// [mirror] interval_secs).
        #[arg(long, value_name = "DURATION", value_parser = whole_seconds)]
        interval: Option<u64>,
    },
    /// The mirrors: upstream, state, node, head, last fetch and change, last error, clone URL.
    List {
        /// Only mirrors whose URL contains this text.
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Bring these mirrors up to date now.
    Sync {
        /// Upstream URLs, as `mirror add` was given them.
        #[arg(required = true)]
        urls: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum BlockCommand {
    /// Push a block now, of one node or of every live node, and wait for each push; prints
    /// one line per node.
    Make {
        /// Only this node's block (default: one block per live node).
        #[arg(long)]
        node: Option<String>,
    },
    /// The blocks pushed, newest first (a tip pushed again is shown once, at its last push).
    List {
        /// Only this node's blocks.
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task; prints its id.
    Create {
        /// What the task does.
        #[arg(long = "type", value_name = "TYPE",
              value_parser = PossibleValuesParser::new(KNOWN_TYPES))]
        kind: String,
        /// What it works on: echo → the text to print; sleep → a duration (2s); mirror → an
        /// upstream git URL; block → a node name (empty: every live node).
        #[arg(long, default_value = "", hide_default_value = true)]
        target: String,
        /// A name to show (default: the type; a mirror's: its repository).
        #[arg(long, default_value = "", hide_default_value = true)]
        name: String,
        /// Run again this long after each run: 30s, 5m, 2h or seconds (default: once).
        #[arg(long, value_name = "DURATION", value_parser = whole_seconds)]
        interval: Option<u64>,
        /// Attempts before the task ends RUNTIME_ERROR (default: the node's [node]
        /// max_attempts).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
        /// Stop a run after this long: 30s, 5m, 2h or seconds (default: the node's [node]
        /// task_timeout_secs).
        #[arg(long, value_name = "DURATION", value_parser = whole_seconds)]
        timeout: Option<u64>,
    },
    /// List tasks, newest first (all pages).
    List {
        /// Only tasks in this state (repeatable; any case).
        #[arg(long = "state", value_name = "STATE", ignore_case = true,
              value_parser = PossibleValuesParser::new(STATES.map(|s| s.as_str_name())))]
        states: Vec<String>,
        /// Only tasks of this type.
        #[arg(long = "type", value_name = "TYPE",
              value_parser = PossibleValuesParser::new(KNOWN_TYPES))]
        kind: Option<String>,
        /// Only tasks whose name or target contains this text.
        #[arg(long, default_value = "", hide_default_value = true)]
        text: String,
        /// At most this many tasks.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Show one task with its results.
    Get {
        /// The task's id (as `task create` printed it).
        id: String,
    },
    /// Show a task's result history, newest first.
    Result {
        /// The task's id.
        id: String,
    },
    /// Kill tasks (running ones stop, waiting ones never run).
    Kill {
        /// Task ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Delete tasks (running ones are killed first).
    Delete {
        /// Task ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Print task changes as they happen, each with its time: the current state of each id
    /// first, then every change once. Ends when every watched task is final (or deleted);
    /// without ids it watches every task until Ctrl-C.
    Watch {
        /// Task ids (none: every task).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
}

/// A duration flag as a whole number of seconds (what the API takes): `90`, `30s`, `5m`,
/// `2h`; `1500ms` is refused rather than rounded.
fn whole_seconds(text: &str) -> Result<u64, String> {
    let d = gitflock_core::duration::parse(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "{text:?} is not a whole number of seconds (this counts in seconds: 1s, 30s, 5m)"
        ));
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_and_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(a.get_help().is_some(), "{path} {id} has no help");
            }
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "{p} has no help");
                walk(sub, &p);
            }
        }
        walk(&Cli::command(), "gitflock");
    }

    #[test]
    fn durations_are_whole_seconds_in_any_unit() {
        assert_eq!(whole_seconds("1s"), Ok(1));
        assert_eq!(whole_seconds("90"), Ok(90));
        assert_eq!(whole_seconds("5m"), Ok(300));
        assert_eq!(whole_seconds("2h"), Ok(7200));
        assert_eq!(whole_seconds("2000ms"), Ok(2));
        assert!(whole_seconds("1500ms").is_err());
        assert!(whole_seconds("soon").is_err());
    }
}
