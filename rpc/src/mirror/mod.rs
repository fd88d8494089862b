//! Mirrors of upstream git repositories: the git work behind `mirror` tasks.
//!
//! The URL gate and a repository's identity live in [`gitflock_core::mirror_url`] (the config,
//! CLI and dashboard need them without git). Here: [`ring`] places identities on nodes by
//! consistent hashing; [`advert`] reads an upstream's ref advertisement as a digest; [`remote`] holds libgit2's credentials, cancellation and timeouts; [`fetch`]
//! brings a bare mirror up to date (blocking; callers run it off the async workers); [`serve`]
//! runs `git daemon` over the mirrors; [`webhook`] reads forge push notifications; [`list`]
//! reads the upstream list repository; [`net`] connects every upstream socket (the SSRF guard,
//! a run's deadlines and cancellation, also under libgit2 through `gitstream`); [`threads`] runs
//! the blocking git work of mirror runs on threads of its own.

pub mod advert;
pub mod fetch;
mod gitstream;
pub mod list;
pub mod net;
pub mod remote;
pub mod ring;
pub mod serve;
pub mod threads;
pub mod webhook;

pub use gitflock_core::mirror_url::{MirrorUrl, digest_hex, task_id_for_key};

use std::path::{Path, PathBuf};

/// The directory that holds every mirror of a node.
pub fn mirrors_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mirrors")
}

/// The network timeouts of every upstream connection: libgit2's (process-wide) and the native
/// `git://` advertisement reader's; and gitflock's socket stream under libgit2 (deadlines,
/// cancellation and the address guard, see [`net`]). Set once at start; an error if libgit2
/// refuses the stream.
pub fn set_timeouts(connect: std::time::Duration, io: std::time::Duration) -> Result<(), String> {
    remote::set_timeouts(connect, io);
    advert::set_timeouts(connect, io);
    gitstream::install(connect, io)
}
