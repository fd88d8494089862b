//! `[redis] sentinels`, `sentinel_master`, `sentinel_password` and `min_replicas_ack`: a Redis
//! that fails over (a primary, replicas, and Redis Sentinel watching them) instead of one
//! plain Redis.
//!
//! With `sentinels` set the nodes ask the sentinels where the primary is, and ask again after a
//! failover; `[redis] url` then gives only the database, user and password of the data nodes
//! (its host and port are not used).

use super::ConfigError;
use super::raw::Raw;

/// Where the sentinels are and which primary they watch.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    /// `host:port` of each sentinel, in the order they are asked.
    pub addrs: Vec<(String, u16)>,
    /// The name the sentinels know the primary by (`sentinel monitor <name> …`).
    pub master: String,
    /// The sentinels' own password (`requirepass` in sentinel.conf), if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for SentinelConfig {
    // The sentinels' password is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("addrs", &self.addrs)
            .field("master", &self.master)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The sentinel settings, if `[redis] sentinels` is set (then `sentinel_master` must be too).
pub(super) fn from_raw(raw: &Raw) -> Result<Option<SentinelConfig>, ConfigError> {
    let list = raw.str("redis", "sentinels").unwrap_or_default();
    let master = raw.str("redis", "sentinel_master").unwrap_or_default();
    if list.trim().is_empty() {
        if !master.trim().is_empty() {
            return Err(ConfigError(
                "[redis] sentinel_master: set without [redis] sentinels".into(),
            ));
        }
        return Ok(None);
    }
    let addrs = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(parse_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let master = master.trim().to_string();
    if master.is_empty() {
        return Err(ConfigError(
            "[redis] sentinel_master: required with [redis] sentinels (the name in `sentinel monitor <name> …`)".into(),
        ));
    }
    if master.len() > 128 || !master.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "[redis] sentinel_master {master:?}: 1 to 128 printable characters without spaces"
        )));
    }
    let password = raw
        .str("redis", "sentinel_password")
        .filter(|p| !p.is_empty());
    Ok(Some(SentinelConfig {
        addrs,
        master,
        password,
    }))
}

/// `host:port` (a host name, an IPv4 address, or `[v6]`).
fn parse_addr(text: &str) -> Result<(String, u16), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "[redis] sentinels: {text:?} is not host:port (like 10.0.0.1:26379)"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty()
        || port == 0
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// `[redis] min_replicas_ack`: replicas that must have a write before it is acknowledged.
pub(super) fn min_replicas_ack(raw: &Raw) -> Result<u32, ConfigError> {
    Ok(raw.int("redis", "min_replicas_ack", 0, 0, 16)? as u32)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TOKEN, load};

    #[test]
    fn sentinels_and_replica_acks_are_read_from_file_and_environment() {
        let c = load(TOKEN, &[]).unwrap();
        assert_eq!(
            (c.redis.sentinel.clone(), c.redis.min_replicas_ack),
            (None, 0)
        );
        let c = load(
            &format!(
                "{TOKEN}[redis]\nsentinels = \"h1:26379, [::1]:26380\"\nsentinel_master = \"gf\"\n"
            ),
            &[
                ("GITFLOCK_REDIS_MIN_REPLICAS_ACK", "1"),
                ("GITFLOCK_REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
            ],
        )
        .unwrap();
        let s = c.redis.sentinel.clone().unwrap();
        assert_eq!(s.addrs, vec![("h1".into(), 26379), ("::1".into(), 26380)]);
        assert_eq!((s.master.as_str(), c.redis.min_replicas_ack), ("gf", 1));
        assert!(!format!("{c:?}").contains("sentinel-secret"));
        for (env, key) in [
            (
                vec![("GITFLOCK_REDIS_SENTINELS", "h1")],
                "[redis] sentinels",
            ),
            (
                vec![("GITFLOCK_REDIS_SENTINELS", "h1:26379")],
                "[redis] sentinel_master",
            ),
            (
                vec![("GITFLOCK_REDIS_SENTINEL_MASTER", "gf")],
                "[redis] sentinel_master",
            ),
            (
                vec![("GITFLOCK_REDIS_MIN_REPLICAS_ACK", "-1")],
                "[redis] min_replicas_ack",
            ),
        ] {
            let e = load(TOKEN, &env).unwrap_err().to_string();
            assert!(e.contains(key), "{e:?} should name {key}");
        }
    }
}
