//! The `[tls]` section (gRPC over TLS between every client and node) and `[redis] tls_ca`.
//!
//! Only paths live here: the files are read and checked to hold PEM of the right kind, so a
//! wrong path is a config error (exit 2), but no TLS library is linked into this crate — the
//! node, the client crate and the dashboard turn the files into TLS settings. A private key
//! is never kept in the config, so no `Debug` of it can print one.

use super::ConfigError;
use super::raw::Raw;
use std::path::{Path, PathBuf};

/// gRPC over TLS. Off unless `cert` and `key` are set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// The node's certificate chain (PEM): served on the gRPC port, and shown to other nodes
    /// when `client_auth` asks for a client certificate.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// The CA (PEM) that signs the nodes' certificates: what a client (a node's probe, the
    /// dashboard) checks a node against, and, with `client_auth`, what a client's certificate
    /// must be signed by.
    pub ca: Option<PathBuf>,
    /// Mutual TLS: every client must present a certificate signed by `ca`.
    pub client_auth: bool,
}

impl TlsConfig {
    /// True when the node serves gRPC over TLS (and its address is `https://`).
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    pub(super) fn from_raw(raw: &Raw) -> Result<TlsConfig, ConfigError> {
        let path = |key: &str| {
            raw.str("tls", key)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from)
        };
        let tls = TlsConfig {
            cert: path("cert"),
            key: path("key"),
            ca: path("ca"),
            client_auth: raw
                .get("tls", "client_auth")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        };
        match (&tls.cert, &tls.key) {
            (Some(_), None) => return Err(ConfigError("[tls] key: required with cert".into())),
            (None, Some(_)) => return Err(ConfigError("[tls] cert: required with key".into())),
            _ => {}
        }
        if tls.client_auth && tls.cert.is_none() {
            return Err(ConfigError(
                "[tls] client_auth: needs cert, key and ca (the CA that signs the clients' certificates)"
                    .into(),
            ));
        }
        if tls.cert.is_some() && tls.ca.is_none() {
            // Nodes dial each other (probes): each must be able to check the others.
            return Err(ConfigError(
                "[tls] ca: required with cert (the CA that signs the nodes' certificates)".into(),
            ));
        }
        if let Some(p) = &tls.cert {
            check_pem("[tls] cert", p, Pem::Certificate)?;
        }
        if let Some(p) = &tls.key {
            check_pem("[tls] key", p, Pem::PrivateKey)?;
        }
        if let Some(p) = &tls.ca {
            check_pem("[tls] ca", p, Pem::Certificate)?;
        }
        Ok(tls)
    }

    /// The node's advertised address as others dial it: `https://` when TLS is on (a bare
    /// `host:port` gets the scheme), and an error where scheme and `[tls]` disagree, since a
    /// node advertising the wrong one could never be probed.
    pub(super) fn advertise(&self, advertise: &str) -> Result<String, ConfigError> {
        let plain = advertise.starts_with("http://");
        let secure = advertise.starts_with("https://");
        if self.enabled() && plain {
            return Err(ConfigError(format!(
                "[node] advertise: {advertise:?} is http://, but [tls] cert is set (use https://)"
            )));
        }
        if !self.enabled() && secure {
            return Err(ConfigError(format!(
                "[node] advertise: {advertise:?} is https://, but [tls] cert and key are not set"
            )));
        }
        if self.enabled() && !secure {
            return Ok(format!("https://{advertise}"));
        }
        Ok(advertise.to_string())
    }
}

/// `[redis] tls_ca`: the CA file that signs the Redis server's certificate, for `rediss://`
/// (else the system's roots).
pub(super) fn redis_tls_ca(raw: &Raw, url: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(p) = raw
        .str("redis", "tls_ca")
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from)
    else {
        return Ok(None);
    };
    if url.starts_with("redis://") {
        return Err(ConfigError(
            "[redis] tls_ca: set, but [redis] url is redis:// (use rediss:// for TLS)".into(),
        ));
    }
    check_pem("[redis] tls_ca", &p, Pem::Certificate)?;
    Ok(Some(p))
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// The file must be readable and hold a PEM block of the kind wanted. The contents stay out
/// of the error (a key file given as a certificate must not be echoed).
fn check_pem(key: &str, path: &Path, want: Pem) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{key}: cannot read {}: {e}", path.display())))?;
    let found = match want {
        Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        // PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") and SEC1 ("EC PRIVATE KEY").
        Pem::PrivateKey => text.lines().any(|l| {
            let l = l.trim();
            l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----")
        }),
    };
    if matches!(want, Pem::PrivateKey) && text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(ConfigError(format!(
            "{key}: {} is encrypted; give the key unencrypted (readable by the node only)",
            path.display()
        )));
    }
    if !found {
        let what = match want {
            Pem::Certificate => "a PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "a PEM private key (-----BEGIN PRIVATE KEY-----)",
        };
        return Err(ConfigError(format!(
            "{key}: {} does not hold {what}",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::collections::HashMap;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    /// Loads with `env` (plus a token); `files` are written to a temporary directory first,
    /// and `{dir}` in a value names it.
    fn load(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let d = dir.path().display().to_string();
        let mut vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace("{dir}", &d)))
            .collect();
        vars.insert("GITFLOCK_CLUSTER_TOKEN".into(), "0123456789abcdef".into());
        Config::load_with(None, &|k| vars.get(k).cloned())
    }

    #[test]
    fn tls_is_off_by_default_and_on_with_cert_and_key() {
        let c = load(&[], &[]).unwrap();
        assert!(!c.tls.enabled());
        assert_eq!(c.node.advertise, "127.0.0.1:6666");
        let c = load(
            &[("n.crt", CERT), ("n.key", KEY), ("ca.crt", CERT)],
            &[
                ("GITFLOCK_TLS_CERT", "{dir}/n.crt"),
                ("GITFLOCK_TLS_KEY", "{dir}/n.key"),
                ("GITFLOCK_TLS_CA", "{dir}/ca.crt"),
                ("GITFLOCK_TLS_CLIENT_AUTH", "true"),
            ],
        )
        .unwrap();
        assert!(c.tls.enabled() && c.tls.client_auth);
        // A bare host:port is dialled over TLS: the advertised address says so.
        assert_eq!(c.node.advertise, "https://127.0.0.1:6666");
    }

    #[test]
    fn bad_tls_settings_name_the_key() {
        let all = [("n.crt", CERT), ("n.key", KEY), ("ca.crt", CERT)];
        let (cert, key, ca) = (
            ("GITFLOCK_TLS_CERT", "{dir}/n.crt"),
            ("GITFLOCK_TLS_KEY", "{dir}/n.key"),
            ("GITFLOCK_TLS_CA", "{dir}/ca.crt"),
        );
        for (files, env, key_named) in [
            (&all[..], vec![cert, ca], "[tls] key"),
            (&all[..], vec![key, ca], "[tls] cert"),
            (&all[..], vec![cert, key], "[tls] ca: required"),
            (
                &all[..],
                vec![("GITFLOCK_TLS_CLIENT_AUTH", "1")],
                "[tls] client_auth",
            ),
            (&[][..], vec![cert, key, ca], "[tls] cert: cannot read"),
            (
                &[("n.crt", KEY), ("n.key", KEY), ("ca.crt", CERT)][..],
                vec![cert, key, ca],
                "[tls] cert: ",
            ),
            (
                &[("n.crt", CERT), ("n.key", CERT), ("ca.crt", CERT)][..],
                vec![cert, key, ca],
                "[tls] key: ",
            ),
            (
                &[("n.crt", CERT), ("n.key", KEY), ("ca.crt", KEY)][..],
                vec![cert, key, ca],
                "[tls] ca: ",
            ),
            (
                &all[..],
                vec![cert, key, ca, ("GITFLOCK_NODE_ADVERTISE", "http://h:1")],
                "[node] advertise",
            ),
            (
                &[][..],
                vec![("GITFLOCK_NODE_ADVERTISE", "https://h:1")],
                "[node] advertise",
            ),
            (
                &all[..],
                vec![("GITFLOCK_REDIS_TLS_CA", "{dir}/ca.crt")],
                "[redis] tls_ca",
            ),
        ] {
            let e = load(files, &env).unwrap_err().to_string();
            assert!(e.contains(key_named), "{e:?} should name {key_named}");
            assert!(!e.contains('\n') && !e.contains("MIIE"), "{e:?}");
        }
    }

    #[test]
    fn a_redis_password_is_never_printed() {
        let c = load(
            &[("ca.crt", CERT)],
            &[
                (
                    "GITFLOCK_REDIS_URL",
                    "rediss://gitflock:hunter2-secret@r:6380/0",
                ),
                ("GITFLOCK_REDIS_TLS_CA", "{dir}/ca.crt"),
            ],
        )
        .unwrap();
        assert!(c.redis.tls_ca.is_some());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("rediss://***@r:6380/0"), "{shown}");
    }
}
