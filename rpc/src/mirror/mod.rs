//! Mirrors of upstream git repositories: the git work behind `mirror` tasks.
//!
//! The URL gate and a repository's identity live in [`gitflock_core::mirror_url`] (the config,
//! CLI and dashboard need them without git). Here: [`ring`] places identities on nodes by
//! consistent hashing; [`advert`] reads an upstream's ref advertisement as a digest; [`remote`] holds libgit2's credentials, cancellation and timeouts; [`fetch`]
//! brings a bare mirror up to date (blocking; callers run it off the async workers); [`serve`]
//! runs `git daemon` over the mirrors; [`webhook`] reads forge push notifications; [`list`]
//! reads the upstream list repository.

pub mod advert;
pub mod fetch;
pub mod list;
pub mod remote;
pub mod ring;
pub mod serve;
pub mod webhook;

pub use gitflock_core::mirror_url::{MirrorUrl, digest_hex, task_id_for_key};

use std::path::{Path, PathBuf};

/// The directory that holds every mirror of a node.
pub fn mirrors_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mirrors")
}

/// The network timeouts of every upstream connection: libgit2's (process-wide) and the native
/// `git://` advertisement reader's. Set once at start.
pub fn set_timeouts(connect: std::time::Duration, io: std::time::Duration) {
    remote::set_timeouts(connect, io);
    advert::set_timeouts(connect, io);
}
