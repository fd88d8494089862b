//! The `[web]` section of the shared config file: `listen`, `nodes`, `password` /
//! `password_hash`, `session_secs`, and the cluster token the dashboard shows the nodes.
//! Loading goes through [`gitflock_core::config::Config`], so env overrides
//! (`GITFLOCK_WEB_NODES=a,b`) and the one-line errors are the node's.

use gitflock_core::config::{Config, ConfigError};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How the login password is checked.
#[derive(Clone)]
pub enum Password {
    /// An argon2 PHC string (`gitflock-web hash-password` makes one).
    Hash(String),
    /// A plain password (from `GITFLOCK_WEB_PASSWORD`, or `gitflock dev`).
    Plain(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::Hash(_) => "Password::Hash(..)",
            Password::Plain(_) => "Password::Plain(..)",
        })
    }
}

#[derive(Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// gRPC endpoints (`http://host:port`), tried in order when one fails.
    pub nodes: Vec<String>,
    /// The cluster token: sent to the nodes, and accepted as `Authorization: Bearer` from
    /// API clients. Never rendered or logged.
    pub token: String,
    pub password: Password,
    pub session: Duration,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("nodes", &self.nodes)
            .field("token", &"<redacted>")
            .field("password", &self.password)
            .field("session", &self.session)
            .finish()
    }
}

impl WebConfig {
    pub fn load(file: Option<&Path>) -> Result<WebConfig, ConfigError> {
        Self::from_config(&Config::load(file)?)
    }

    pub fn from_config(cfg: &Config) -> Result<WebConfig, ConfigError> {
        let get = |k: &str| cfg.extra.get(&format!("web.{k}"));
        let listen_text = get("listen")
            .and_then(|v| v.as_str())
            .unwrap_or("127.0.0.1:8080")
            .to_string();
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError(format!(
                "[web] listen: {listen_text:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        let mut nodes = Vec::new();
        if let Some(list) = get("nodes").and_then(|v| v.as_array()) {
            for v in list {
                let s = v.as_str().unwrap_or_default().trim();
                if s.is_empty() {
                    continue;
                }
                nodes.push(
                    gitflock_client::endpoint_url(s)
                        .map_err(|e| ConfigError(format!("[web] nodes: {e}")))?,
                );
            }
        }
        if nodes.is_empty() {
            nodes.push(format!("http://{}", cfg.node.advertise));
        }
        let hash = get("password_hash")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty());
        let plain = get("password")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty());
        let password = match (hash, plain) {
            (Some(h), _) => {
                argon2::PasswordHash::new(h).map_err(|_| {
                    ConfigError(
                        "[web] password_hash: not a PHC string (make one with `gitflock-web hash-password`)"
                            .into(),
                    )
                })?;
                Password::Hash(h.to_string())
            }
            (None, Some(p)) => {
                if p.len() < 8 {
                    return Err(ConfigError(
                        "[web] password: must be at least 8 characters".into(),
                    ));
                }
                Password::Plain(p.to_string())
            }
            (None, None) => {
                return Err(ConfigError(
                    "[web] password_hash (or GITFLOCK_WEB_PASSWORD) is required: the dashboard has no anonymous access".into(),
                ));
            }
        };
        let secs = match get("session_secs") {
            None => 12 * 3600,
            Some(v) => v.as_integer().unwrap_or(-1),
        };
        if !(60..=30 * 86400).contains(&secs) {
            return Err(ConfigError(
                "[web] session_secs: must be between 60 and 2592000".into(),
            ));
        }
        Ok(WebConfig {
            listen,
            nodes,
            token: cfg.cluster.token.clone(),
            password,
            session: Duration::from_secs(secs as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<WebConfig, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cfg = Config::load_with(None, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })?;
        WebConfig::from_config(&cfg)
    }

    const TOKEN: (&str, &str) = ("GITFLOCK_CLUSTER_TOKEN", "0123456789abcdef0123");

    #[test]
    fn nodes_come_from_a_comma_separated_env_list() {
        let c = load(&[
            TOKEN,
            ("GITFLOCK_WEB_PASSWORD", "correct horse"),
            (
                "GITFLOCK_WEB_NODES",
                "127.0.0.1:7001, http://127.0.0.1:7002",
            ),
        ])
        .unwrap();
        assert_eq!(c.nodes, ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]);
        assert!(!format!("{c:?}").contains("correct horse"));
        assert!(!format!("{c:?}").contains(TOKEN.1));
    }

    #[test]
    fn a_password_is_required_and_checked() {
        let e = load(&[TOKEN]).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let e = load(&[TOKEN, ("GITFLOCK_WEB_PASSWORD_HASH", "nope")]).unwrap_err();
        assert!(e.to_string().contains("[web] password_hash"), "{e}");
        let e = load(&[TOKEN, ("GITFLOCK_WEB_PASSWORD", "short")]).unwrap_err();
        assert!(e.to_string().contains("at least 8"), "{e}");
        let e = load(&[
            TOKEN,
            ("GITFLOCK_WEB_PASSWORD", "long enough"),
            ("GITFLOCK_WEB_NODES", "not a url at all"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("[web] nodes"), "{e}");
    }
}
