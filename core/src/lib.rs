//! gitflock-core: what every gitflock program shares, and nothing that talks to Redis or git.
//!
//! The node (`gitflock-rpc`), the CLI (`gitflock-cli`), the dashboard (`gitflock-web`) and the
//! test harness all build on this crate; the compiler keeps Redis and libgit2 out of it.
//!
//! - [`config`]: the one TOML file and its `GITFLOCK_<SECTION>_<KEY>` overrides.
//! - [`task`]: the task model — states, known types, limits, validation, the JSON form.
//! - [`log_entry`]: a log-chain entry's rules and the seed's message format.
//! - [`mirror_url`]: the gate for upstream URLs and a repository's identity.
//! - [`duration`]: `500ms`, `30s`, `5m`, `2h` or bare seconds, everywhere.
//! - [`clock`]: wall-clock milliseconds, and the injectable clock the chain stamps entries with.
//! - [`redact`] (credentials in URLs masked) and [`secret`] (constant-time comparison).
//! - [`shutdown`] (SIGTERM/SIGINT), [`systemd`] (readiness, watchdog), [`logging`].

pub mod clock;
pub mod config;
pub mod duration;
pub mod log_entry;
pub mod logging;
pub mod mirror_url;
pub mod redact;
pub mod secret;
pub mod shutdown;
pub mod systemd;
pub mod task;
