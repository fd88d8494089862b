//! Time. Node-local wall-clock milliseconds ([`now_ms`]), and the [`Clock`] the log chain
//! stamps entries with, which tests replace by a file (day rollover without waiting a day).
//! Task times are not taken from here: the Redis scripts read Redis's `TIME` (one clock for
//! the whole cluster).

use std::path::PathBuf;

/// Milliseconds since the Unix epoch, from this machine's clock (0 if it is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where "now" comes from: the system clock, or (for tests of day rollover) a file holding an
/// RFC 3339 time, named by `GITFLOCK_CLOCK_FILE`.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    File(PathBuf),
}

impl Clock {
    pub fn from_env() -> Clock {
        match std::env::var_os("GITFLOCK_CLOCK_FILE") {
            Some(p) => Clock::File(PathBuf::from(p)),
            None => Clock::System,
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::File(p) => std::fs::read_to_string(p)
                .ok()
                .and_then(|t| crate::log_entry::parse_time(&t).ok())
                .unwrap_or_else(now_ms),
        }
    }
}
