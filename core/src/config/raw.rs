//! The raw view of the config: every known key with its kind, the file's values checked
//! against them, and the `GITFLOCK_<SECTION>_<KEY>` environment overrides on top.

use super::ConfigError;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings; in the environment, comma-separated.
    List,
    /// A duration: `500ms`, `30s`, `5m`, `2h`, or a bare number of seconds (in the file also
    /// an integer).
    Duration,
}

/// Every known key: section, key, kind.
pub(super) const KEYS: &[(&str, &str, Kind)] = &[
    ("node", "name", Kind::Str),
    ("node", "data_dir", Kind::Str),
    ("node", "grpc_listen", Kind::Str),
    ("node", "advertise", Kind::Str),
    ("node", "concurrency", Kind::Int),
    ("node", "task_timeout_secs", Kind::Int),
    ("node", "max_attempts", Kind::Int),
    ("node", "metrics_listen", Kind::Str),
    ("redis", "url", Kind::Str),
    ("redis", "prefix", Kind::Str),
    ("redis", "sentinels", Kind::Str),
    ("redis", "sentinel_master", Kind::Str),
    ("redis", "sentinel_password", Kind::Str),
    ("redis", "min_replicas_ack", Kind::Int),
    ("redis", "tls_ca", Kind::Str),
    ("cluster", "token", Kind::Str),
    ("cluster", "heartbeat_ms", Kind::Int),
    ("cluster", "dead_after_ms", Kind::Int),
    ("cluster", "lease_ms", Kind::Int),
    ("mirror", "interval_secs", Kind::Int),
    ("mirror", "list_url", Kind::Str),
    ("mirror", "list_refresh_secs", Kind::Int),
    ("mirror", "allow_file_urls", Kind::Bool),
    ("mirror", "list_max_remove_percent", Kind::Int),
    ("mirror", "serve_listen", Kind::Str),
    ("mirror", "serve_advertise", Kind::Str),
    ("mirror", "webhook_secret", Kind::Str),
    ("mirror", "settle_secs", Kind::Int),
    ("mirror", "host_connections", Kind::Int),
    ("mirror", "deny_private_networks", Kind::Bool),
    ("mirror", "ssh_agent", Kind::Bool),
    ("chain", "remote", Kind::Str),
    ("chain", "branch", Kind::Str),
    ("chain", "block_interval_secs", Kind::Int),
    ("chain", "max_future_skew_secs", Kind::Duration),
    ("tasks", "retention_succeed_secs", Kind::Duration),
    ("tasks", "retention_failed_secs", Kind::Duration),
    ("tls", "cert", Kind::Str),
    ("tls", "key", Kind::Str),
    ("tls", "ca", Kind::Str),
    ("tls", "client_auth", Kind::Bool),
    ("web", "listen", Kind::Str),
    ("web", "nodes", Kind::List),
    ("web", "password", Kind::Str),
    ("web", "password_hash", Kind::Str),
    ("web", "session_secs", Kind::Int),
    ("web", "trusted_proxies", Kind::List),
];

/// The raw key/value view: file values, then environment overrides on top.
pub(super) struct Raw {
    pub(super) values: BTreeMap<(String, String), toml::Value>,
}

impl Raw {
    pub(super) fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Raw, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                let msg = e.message().to_string();
                ConfigError(format!("{}: {}", path.display(), msg.trim()))
            })?;
            for (section, body) in table {
                let toml::Value::Table(body) = body else {
                    return Err(ConfigError(format!("[{section}] must be a section")));
                };
                for (key, value) in body {
                    let Some(kind) = kind_of(&section, &key) else {
                        return Err(ConfigError(format!("unknown key [{section}] {key}")));
                    };
                    check_kind(&section, &key, kind, &value)?;
                    values.insert((section.clone(), key), value);
                }
            }
        }
        for &(section, key, kind) in KEYS {
            let var = format!("GITFLOCK_{}_{}", section.to_uppercase(), key.to_uppercase());
            let Some(text) = env(&var) else { continue };
            let value = match kind {
                Kind::Str => toml::Value::String(text),
                Kind::Int => toml::Value::Integer(text.trim().parse().map_err(|_| {
                    ConfigError(format!(
                        "[{section}] {key} (from {var}): expected an integer, got {text:?}"
                    ))
                })?),
                Kind::Bool => toml::Value::Boolean(match text.trim() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" | "" => false,
                    _ => {
                        return Err(ConfigError(format!(
                            "[{section}] {key} (from {var}): expected true or false, got {text:?}"
                        )));
                    }
                }),
                Kind::Duration => toml::Value::String(text),
                Kind::List => toml::Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
            };
            values.insert((section.to_string(), key.to_string()), value);
        }
        Ok(Raw { values })
    }

    pub(super) fn get(&self, section: &str, key: &str) -> Option<&toml::Value> {
        self.values.get(&(section.to_string(), key.to_string()))
    }

    pub(super) fn str(&self, section: &str, key: &str) -> Option<String> {
        self.get(section, key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// An integer in `[min, max]`, or the default.
    pub(super) fn int(
        &self,
        section: &str,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let Some(v) = self.get(section, key).and_then(|v| v.as_integer()) else {
            return Ok(default);
        };
        if v < min || v > max {
            return Err(ConfigError(format!(
                "[{section}] {key}: {v} is out of range {min}..={max}"
            )));
        }
        Ok(v)
    }
}

impl Raw {
    /// A duration in `[min, max]`, or the default: an integer is seconds, text is parsed by
    /// [`crate::duration::parse`].
    pub(super) fn duration(
        &self,
        section: &str,
        key: &str,
        default: std::time::Duration,
        min: std::time::Duration,
        max: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        let d = match self.get(section, key) {
            None => return Ok(default),
            Some(toml::Value::Integer(n)) => u64::try_from(*n)
                .map(std::time::Duration::from_secs)
                .map_err(|_| ConfigError(format!("[{section}] {key}: {n} is negative")))?,
            Some(v) => crate::duration::parse(v.as_str().unwrap_or_default())
                .map_err(|e| ConfigError(format!("[{section}] {key}: {e}")))?,
        };
        if d < min || d > max {
            return Err(ConfigError(format!(
                "[{section}] {key}: {d:?} is out of range {min:?}..={max:?}"
            )));
        }
        Ok(d)
    }
}

fn kind_of(section: &str, key: &str) -> Option<Kind> {
    KEYS.iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, kind)| *kind)
}

fn check_kind(
    section: &str,
    key: &str,
    kind: Kind,
    value: &toml::Value,
) -> Result<(), ConfigError> {
    let ok = match kind {
        Kind::Str => value.is_str(),
        Kind::Int => value.is_integer(),
        Kind::Bool => value.is_bool(),
        Kind::List => value
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v.is_str())),
        Kind::Duration => value.is_str() || value.is_integer(),
    };
    if ok {
        return Ok(());
    }
    let want = match kind {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Bool => "true or false",
        Kind::List => "a list of strings",
        Kind::Duration => "a duration like 30s, 5m, 2h or a number of seconds",
    };
    Err(ConfigError(format!(
        "[{section}] {key}: expected {want}, got {value}"
    )))
}
