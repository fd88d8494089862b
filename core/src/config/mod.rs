//! The one TOML config file and its `GITFLOCK_<SECTION>_<KEY>` environment overrides.
//!
//! Every key is declared once in [`KEYS`]; the file may hold only those keys, and each value is
//! checked against its kind, so a bad config is one line naming the key (the binaries exit 2).

mod raw;
mod sentinel;
mod tasks;
mod tls;

pub use sentinel::SentinelConfig;
pub use tasks::TasksConfig;
pub use tls::TlsConfig;

use raw::Raw;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A bad config: one line, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    /// The address other nodes and clients dial to reach this node.
    pub advertise: String,
    /// Tasks run at once; 0 makes a node that serves the API (and may be master) but runs none.
    pub concurrency: usize,
    pub task_timeout: Duration,
    pub max_attempts: u32,
    /// Where `/metrics` and `/healthz` are served (None: not served).
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Clone)]
pub struct RedisConfig {
    /// May hold an ACL user and password (`rediss://user:pass@host:port/0`): never printed.
    pub url: String,
    pub prefix: String,
    /// The CA that signs the Redis server's certificate (`rediss://`); None: the system's.
    pub tls_ca: Option<PathBuf>,
    /// Find the primary through these sentinels (then `url` gives only database, user and
    /// password); None: `url` is the Redis.
    pub sentinel: Option<SentinelConfig>,
    /// Replicas that must hold a write (WAIT) before it is acknowledged; 0: no wait.
    pub min_replicas_ack: u32,
}

impl std::fmt::Debug for RedisConfig {
    // The URL's password is a secret: printed with its credentials masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &crate::redact::redact(&self.url))
            .field("prefix", &self.prefix)
            .field("tls_ca", &self.tls_ca)
            .field("sentinel", &self.sentinel)
            .field("min_replicas_ack", &self.min_replicas_ack)
            .finish()
    }
}

#[derive(Clone)]
pub struct ClusterConfig {
    pub token: String,
    pub heartbeat: Duration,
    pub dead_after: Duration,
    pub lease: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    // The token is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("token", &"<redacted>")
            .field("heartbeat", &self.heartbeat)
            .field("dead_after", &self.dead_after)
            .field("lease", &self.lease)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Where blocks are pushed (a git URL or path); None: no blocks.
    pub remote: Option<String>,
    /// The branch name pattern: `{node}` and `{date}` (YYYYMMDD, UTC) are replaced.
    pub branch: String,
    /// How often each node pushes a block (0: only on demand).
    pub block_interval: Duration,
    /// How far ahead of the node's clock an entry's `create_at` may be. Entries never go back
    /// in time, so one far-future entry would stamp every later one with its time.
    pub max_future_skew: Duration,
}

#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// How often a mirror is checked (the default interval of `mirror` tasks).
    pub interval_secs: u64,
    /// The upstream list repository (compass-ci `upstream-repos` format); None: no list.
    pub list_url: Option<String>,
    pub list_refresh: Duration,
    /// A list sync may remove at most this share of the listed mirrors (or 5) at once.
    pub list_max_remove_percent: u32,
    pub allow_file_urls: bool,
    /// Where `git daemon` serves this node's mirrors; None: not served.
    pub serve_listen: Option<std::net::SocketAddr>,
    /// host:port that clone URLs name (default: serve_listen).
    pub serve_advertise: String,
    /// The push-webhook secret; empty: webhooks are refused.
    pub webhook_secret: String,
    /// A node back from the dead gets mirrors again only after this long up.
    pub settle: Duration,
    /// Connections a node opens to one upstream host at once (the connect and ref listing;
    /// fetches are not limited beyond the node's concurrency).
    pub host_connections: usize,
    /// Offer the keys of the ssh agent (`SSH_AUTH_SOCK`) to ssh upstreams. Off by default: a
    /// hostile upstream URL must not get to use the operator's keys.
    pub ssh_agent: bool,
    /// Refuse upstreams whose address (after DNS resolution, before connecting) is loopback,
    /// link-local, private, shared (CGNAT) or otherwise not public: an SSRF guard for
    /// clusters where whoever may add a mirror must not reach the internal network.
    pub deny_private_networks: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub node: NodeConfig,
    pub redis: RedisConfig,
    pub cluster: ClusterConfig,
    pub chain: ChainConfig,
    pub mirror: MirrorConfig,
    pub tls: TlsConfig,
    /// How long finished one-off tasks stay.
    pub tasks: TasksConfig,
    /// Keys of sections whose features land in later issues (mirror, web), kept
    /// validated so a config written for the whole product loads today.
    pub extra: BTreeMap<String, toml::Value>,
}

/// The default node name: the host name, made safe as a node name.
pub fn default_node_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "node".to_string()
    } else {
        name
    }
}

/// Node names become Redis keys, channel names, directory names and branch names.
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("may hold only letters, digits, '-', '_' and '.'".into());
    }
    if name.starts_with(['.', '-']) {
        return Err("must not start with '.' or '-'".into());
    }
    Ok(())
}

impl Config {
    /// Loads the file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(file, &|k| std::env::var(k).ok())
    }

    /// Loads with an injected environment (tests).
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = Raw::load(file, env)?;
        let extra = raw
            .values
            .iter()
            .filter(|((s, _), _)| {
                !matches!(
                    s.as_str(),
                    "node" | "redis" | "cluster" | "chain" | "mirror" | "tls" | "tasks"
                )
            })
            .map(|((s, k), v)| (format!("{s}.{k}"), v.clone()))
            .collect();
        let tls = TlsConfig::from_raw(&raw)?;
        let mut node = NodeConfig::from_raw(&raw)?;
        node.advertise = tls.advertise(&node.advertise)?;
        Ok(Config {
            node,
            tls,
            tasks: TasksConfig::from_raw(&raw)?,
            redis: RedisConfig::from_raw(&raw)?,
            cluster: ClusterConfig::from_raw(&raw)?,
            chain: ChainConfig::from_raw(&raw)?,
            mirror: MirrorConfig::from_raw(&raw)?,
            extra,
        })
    }
}

/// An optional `host:port` socket address; `example` shows the expected form in the error.
fn socket_addr(
    raw: &Raw,
    section: &str,
    key: &str,
    default: Option<&str>,
    example: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let text = match raw.str(section, key) {
        Some(t) if t.trim().is_empty() => return Ok(None),
        Some(t) => t,
        None => match default {
            Some(d) => d.to_string(),
            None => return Ok(None),
        },
    };
    text.trim().parse().map(Some).map_err(|_| {
        ConfigError(format!(
            "[{section}] {key}: {text:?} is not an address like {example}"
        ))
    })
}

fn secs(
    raw: &Raw,
    section: &str,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        raw.int(section, key, default, min, max)? as u64,
    ))
}

impl NodeConfig {
    fn from_raw(raw: &Raw) -> Result<NodeConfig, ConfigError> {
        let name = raw.str("node", "name").unwrap_or_else(default_node_name);
        check_node_name(&name).map_err(|e| ConfigError(format!("[node] name {name:?}: {e}")))?;
        let data_dir = raw
            .str("node", "data_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data").join(&name));
        let grpc_listen = socket_addr(
            raw,
            "node",
            "grpc_listen",
            Some("127.0.0.1:6666"),
            "127.0.0.1:6666",
        )?
        .ok_or_else(|| ConfigError("[node] grpc_listen: is empty".into()))?;
        let advertise = raw.str("node", "advertise").unwrap_or_else(|| {
            raw.str("node", "grpc_listen")
                .unwrap_or_else(|| "127.0.0.1:6666".into())
        });
        if advertise.is_empty()
            || advertise.len() > 256
            || advertise.chars().any(char::is_whitespace)
        {
            return Err(ConfigError(format!(
                "[node] advertise: {advertise:?} is not an address"
            )));
        }
        Ok(NodeConfig {
            data_dir,
            grpc_listen,
            advertise,
            concurrency: raw.int("node", "concurrency", 16, 0, 4096)? as usize,
            task_timeout: secs(raw, "node", "task_timeout_secs", 3600, 1, 7 * 86400)?,
            max_attempts: raw.int("node", "max_attempts", 3, 1, 100)? as u32,
            metrics_listen: socket_addr(raw, "node", "metrics_listen", None, "127.0.0.1:9666")?,
            name,
        })
    }
}

impl RedisConfig {
    fn from_raw(raw: &Raw) -> Result<RedisConfig, ConfigError> {
        let url = raw
            .str("redis", "url")
            .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(ConfigError(
                "[redis] url: must start with redis://, rediss:// or unix://".to_string(),
            ));
        }
        let prefix = raw
            .str("redis", "prefix")
            .unwrap_or_else(|| "gitflock".into());
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError(format!(
                "[redis] prefix {prefix:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            )));
        }
        let tls_ca = tls::redis_tls_ca(raw, &url)?;
        Ok(RedisConfig {
            url,
            prefix,
            tls_ca,
            sentinel: sentinel::from_raw(raw)?,
            min_replicas_ack: sentinel::min_replicas_ack(raw)?,
        })
    }
}

impl ClusterConfig {
    fn from_raw(raw: &Raw) -> Result<ClusterConfig, ConfigError> {
        let token = raw.str("cluster", "token").unwrap_or_default();
        if token.is_empty() {
            return Err(ConfigError(
                "[cluster] token is required (set it in the file or GITFLOCK_CLUSTER_TOKEN)".into(),
            ));
        }
        if token.len() < 16 {
            return Err(ConfigError(
                "[cluster] token: must be at least 16 characters".into(),
            ));
        }
        let heartbeat = raw.int("cluster", "heartbeat_ms", 500, 50, 60_000)?;
        let dead_after = raw.int("cluster", "dead_after_ms", 2000, 100, 600_000)?;
        let lease = raw.int("cluster", "lease_ms", 2000, 100, 600_000)?;
        for (key, value) in [("dead_after_ms", dead_after), ("lease_ms", lease)] {
            if value < 2 * heartbeat {
                return Err(ConfigError(format!(
                    "[cluster] {key}: {value} must be at least twice heartbeat_ms ({heartbeat})"
                )));
            }
        }
        Ok(ClusterConfig {
            token,
            heartbeat: Duration::from_millis(heartbeat as u64),
            dead_after: Duration::from_millis(dead_after as u64),
            lease: Duration::from_millis(lease as u64),
        })
    }
}

impl ChainConfig {
    fn from_raw(raw: &Raw) -> Result<ChainConfig, ConfigError> {
        let remote = raw.str("chain", "remote").filter(|r| !r.trim().is_empty());
        if let Some(r) = &remote
            && (r.starts_with('-') || r.contains("::") || r.chars().any(char::is_control))
        {
            return Err(ConfigError("[chain] remote: not a git URL or path".into()));
        }
        let branch = raw
            .str("chain", "branch")
            .unwrap_or_else(|| "{node}-{date}".into());
        let sample = branch.replace("{node}", "n").replace("{date}", "20260101");
        if sample.is_empty()
            || sample.starts_with(['-', '/', '.'])
            || sample.ends_with(['/', '.'])
            || sample.contains("..")
            || !sample
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            return Err(ConfigError(format!(
                "[chain] branch {branch:?}: not a valid branch name pattern"
            )));
        }
        Ok(ChainConfig {
            remote,
            branch,
            block_interval: secs(raw, "chain", "block_interval_secs", 3600, 0, 366 * 86400)?,
            max_future_skew: raw.duration(
                "chain",
                "max_future_skew_secs",
                Duration::from_secs(300),
                Duration::ZERO,
                Duration::from_secs(7 * 86400),
            )?,
        })
    }
}

impl MirrorConfig {
    fn from_raw(raw: &Raw) -> Result<MirrorConfig, ConfigError> {
        let list_url = raw
            .str("mirror", "list_url")
            .filter(|r| !r.trim().is_empty());
        if let Some(u) = &list_url {
            crate::mirror_url::MirrorUrl::parse(u, true)
                .map_err(|e| ConfigError(format!("[mirror] list_url: {e}")))?;
        }
        let serve_listen = socket_addr(
            raw,
            "mirror",
            "serve_listen",
            Some("127.0.0.1:9418"),
            "127.0.0.1:9418",
        )?;
        let serve_advertise = raw
            .str("mirror", "serve_advertise")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| serve_listen.map(|a| a.to_string()).unwrap_or_default());
        if serve_advertise
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(ConfigError(format!(
                "[mirror] serve_advertise {serve_advertise:?}: expected host:port"
            )));
        }
        Ok(MirrorConfig {
            interval_secs: raw.int("mirror", "interval_secs", 600, 1, 366 * 86400)? as u64,
            list_url,
            list_refresh: secs(raw, "mirror", "list_refresh_secs", 300, 1, 366 * 86400)?,
            list_max_remove_percent: raw.int("mirror", "list_max_remove_percent", 20, 0, 100)?
                as u32,
            allow_file_urls: raw
                .get("mirror", "allow_file_urls")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            serve_listen,
            serve_advertise,
            webhook_secret: raw.str("mirror", "webhook_secret").unwrap_or_default(),
            settle: secs(raw, "mirror", "settle_secs", 30, 0, 86400)?,
            host_connections: raw.int("mirror", "host_connections", 4, 1, 256)? as usize,
            ssh_agent: raw
                .get("mirror", "ssh_agent")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            deny_private_networks: raw
                .get("mirror", "deny_private_networks")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Loads `text` as the config file under the environment `env` (shared by the section
    /// modules' tests).
    pub(super) fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gitflock.toml");
        std::fs::write(&path, text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(Some(&path), &|k| env.get(k).cloned())
    }

    pub(super) const TOKEN: &str = "[cluster]\ntoken = \"0123456789abcdef\"\n";

    #[test]
    fn defaults_follow_the_product_contract() {
        let c = load(TOKEN, &[("GITFLOCK_NODE_NAME", "n1")]).unwrap();
        assert_eq!(c.node.grpc_listen.to_string(), "127.0.0.1:6666");
        assert_eq!(c.node.advertise, "127.0.0.1:6666");
        assert_eq!(c.node.data_dir, PathBuf::from("./data/n1"));
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.redis.prefix, "gitflock");
        assert_eq!(c.cluster.heartbeat, Duration::from_millis(500));
        assert_eq!(c.cluster.dead_after, Duration::from_millis(2000));
        assert_eq!(c.cluster.lease, Duration::from_millis(2000));
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            &format!("{TOKEN}[node]\nname = \"a\"\nconcurrency = 4\n"),
            &[
                ("GITFLOCK_NODE_CONCURRENCY", "9"),
                ("GITFLOCK_REDIS_PREFIX", "other"),
            ],
        )
        .unwrap();
        assert_eq!(c.node.name, "a");
        assert_eq!(c.node.concurrency, 9);
        assert_eq!(c.redis.prefix, "other");
    }

    #[test]
    fn later_sections_are_accepted_and_checked() {
        let c = load(&format!("{TOKEN}[mirror]\nallow_file_urls = true\n"), &[]).unwrap();
        assert!(c.mirror.allow_file_urls);
        let e = load(&format!("{TOKEN}[mirror]\nlist_url = \"ext::sh\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("[mirror] list_url"), "{e}");
        let e = load(
            &format!("{TOKEN}[mirror]\nserve_listen = \"nowhere\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("[mirror] serve_listen"), "{e}");
        let e = load(&format!("{TOKEN}[web]\nnodes = \"x\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("[web] nodes"), "{e}");
    }

    #[test]
    fn bad_configs_name_the_key_in_one_line() {
        for (text, env, key) in [
            (
                format!("{TOKEN}[node]\nconcurrency = \"many\"\n"),
                vec![],
                "[node] concurrency",
            ),
            (
                format!("{TOKEN}[node]\nbogus = 1\n"),
                vec![],
                "[node] bogus",
            ),
            (
                TOKEN.to_string(),
                vec![("GITFLOCK_NODE_CONCURRENCY", "x")],
                "[node] concurrency",
            ),
            (
                TOKEN.to_string(),
                vec![("GITFLOCK_NODE_GRPC_LISTEN", "nope")],
                "[node] grpc_listen",
            ),
            (
                TOKEN.to_string(),
                vec![("GITFLOCK_NODE_NAME", "../x")],
                "[node] name",
            ),
            (String::new(), vec![], "[cluster] token"),
            (
                TOKEN.to_string(),
                vec![("GITFLOCK_CLUSTER_HEARTBEAT_MS", "5")],
                "[cluster] heartbeat_ms",
            ),
            (
                TOKEN.to_string(),
                vec![("GITFLOCK_REDIS_URL", "http://x")],
                "[redis] url",
            ),
            ("[node\n".to_string(), vec![], "gitflock.toml"),
        ] {
            let e = load(&text, &env).unwrap_err().to_string();
            assert!(e.contains(key), "{e:?} should name {key}");
            assert!(!e.contains('\n'), "{e:?} should be one line");
        }
    }

    #[test]
    fn the_token_is_never_printed() {
        let c = load(TOKEN, &[]).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn future_skew_and_ssh_agent_have_safe_defaults() {
        let c = load(TOKEN, &[]).unwrap();
        assert_eq!(c.chain.max_future_skew, Duration::from_secs(300));
        assert!(!c.mirror.ssh_agent);
        let c = load(
            &format!("{TOKEN}[chain]\nmax_future_skew_secs = \"2m\"\n"),
            &[("GITFLOCK_MIRROR_SSH_AGENT", "true")],
        )
        .unwrap();
        assert_eq!(c.chain.max_future_skew, Duration::from_secs(120));
        assert!(c.mirror.ssh_agent);
        let c = load(TOKEN, &[("GITFLOCK_CHAIN_MAX_FUTURE_SKEW_SECS", "0")]).unwrap();
        assert_eq!(c.chain.max_future_skew, Duration::ZERO);
        let e = load(TOKEN, &[("GITFLOCK_CHAIN_MAX_FUTURE_SKEW_SECS", "30d")]).unwrap_err();
        assert!(
            e.to_string().contains("[chain] max_future_skew_secs"),
            "{e}"
        );
    }
}
