//! The `[web]` section of the shared config file: `listen`, `nodes`, `password` /
//! `password_hash`, `session_secs`, `trusted_proxies`, and the cluster token the dashboard
//! shows the nodes.
//! Loading goes through [`gitflock_core::config::Config`], so env overrides
//! (`GITFLOCK_WEB_NODES=a,b`) and the one-line errors are the node's.

use gitflock_core::config::{Config, ConfigError};
use std::net::{IpAddr, SocketAddr};
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
    /// gRPC endpoints (`http://host:port`, `https://host:port`), tried in order when one
    /// fails.
    pub nodes: Vec<String>,
    /// How `https://` nodes are checked (`[tls] ca`) and the client certificate shown to
    /// nodes that ask for one (`[tls] cert` and `key`).
    pub tls: gitflock_client::Tls,
    /// The cluster token: sent to the nodes, and accepted as `Authorization: Bearer` from
    /// API clients. Never rendered or logged.
    pub token: String,
    pub password: Password,
    pub session: Duration,
    /// Reverse proxies whose `X-Forwarded-For` / `X-Real-IP` name the client (the login
    /// limit counts per client). Empty: the TCP peer is the client, whatever headers say.
    pub trusted_proxies: Vec<Cidr>,
}

/// An address or a network: `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket is the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, ip, width) = match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        if shift >= 128 {
            return true;
        }
        net >> shift == ip >> shift
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("nodes", &self.nodes)
            .field("tls", &self.tls)
            .field("token", &"<redacted>")
            .field("password", &self.password)
            .field("session", &self.session)
            .field("trusted_proxies", &self.trusted_proxies)
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
        let t = &cfg.tls;
        let tls =
            gitflock_client::Tls::from_files(t.ca.as_deref(), t.cert.as_deref(), t.key.as_deref())
                .map_err(|e| ConfigError(format!("[tls]: {e}")))?;
        let mut nodes = Vec::new();
        if let Some(list) = get("nodes").and_then(|v| v.as_array()) {
            for v in list {
                let s = v.as_str().unwrap_or_default().trim();
                if s.is_empty() {
                    continue;
                }
                // A bare host:port is https:// when [tls] ca is set.
                nodes.push(
                    tls.endpoint_url(s)
                        .map_err(|e| ConfigError(format!("[web] nodes: {e}")))?,
                );
            }
        }
        if nodes.is_empty() {
            nodes.push(
                tls.endpoint_url(&cfg.node.advertise)
                    .map_err(|e| ConfigError(format!("[node] advertise: {e}")))?,
            );
        }
        if let Some(n) = nodes.iter().find(|n| n.starts_with("https://"))
            && !tls.has_ca()
        {
            return Err(ConfigError(format!(
                "[tls] ca: required to check {n} (the CA that signs the nodes' certificates)"
            )));
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
        let mut trusted_proxies = Vec::new();
        for v in get("trusted_proxies")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let text = v.as_str().unwrap_or_default().trim();
            if text.is_empty() {
                continue;
            }
            trusted_proxies.push(Cidr::parse(text).ok_or_else(|| {
                ConfigError(format!(
                    "[web] trusted_proxies: {text:?} is not an address or network like 10.0.0.5 or 10.0.0.0/8"
                ))
            })?);
        }
        Ok(WebConfig {
            listen,
            nodes,
            tls,
            token: cfg.cluster.token.clone(),
            password,
            session: Duration::from_secs(secs as u64),
            trusted_proxies,
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
        let e = load(&[
            TOKEN,
            ("GITFLOCK_WEB_PASSWORD", "long enough"),
            ("GITFLOCK_WEB_TRUSTED_PROXIES", "10.0.0.1, nginx"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("[web] trusted_proxies"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_addresses_and_networks() {
        let c = load(&[
            TOKEN,
            ("GITFLOCK_WEB_PASSWORD", "long enough"),
            (
                "GITFLOCK_WEB_TRUSTED_PROXIES",
                "127.0.0.1, 10.0.0.0/8,fd00::/8",
            ),
        ])
        .unwrap();
        let t = &c.trusted_proxies;
        assert_eq!(t.len(), 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t[0].contains(ip("127.0.0.1")) && !t[0].contains(ip("127.0.0.2")));
        assert!(
            t[0].contains(ip("::ffff:127.0.0.1")),
            "v4 through a v6 socket"
        );
        assert!(t[1].contains(ip("10.255.0.1")) && !t[1].contains(ip("11.0.0.1")));
        assert!(t[2].contains(ip("fd12::1")) && !t[2].contains(ip("fe80::1")));
        assert!(!t[1].contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }
}
