//! The command line, as clap reads it: every command, flag and its help.

use clap::{Parser, Subcommand};

use crate::dev;

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
