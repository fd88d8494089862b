//! TLS for a local cluster: a throwaway certificate authority made with the `openssl` CLI
//! (installed wherever git is; no TLS crate in the harness), certificates it signs for
//! 127.0.0.1, and a `redis-server` that speaks TLS only, with an ACL user.
//!
//! The certificates are what docs/operations.md tells an operator to make: an EC P-256 CA
//! and, per machine, a certificate whose subjectAltName names the address clients dial and
//! whose extended key usage allows both serverAuth (its gRPC server) and clientAuth (its
//! probes of the other nodes under mutual TLS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::port::free_port;
use crate::process::Process;
use crate::wait::{Poll, poll_until};

/// The longest wait for a TLS redis-server to listen.
const REDIS_START: Duration = Duration::from_secs(10);

/// A certificate authority in a directory: `ca.crt` (what clients trust) and `ca.key`.
#[derive(Clone, Debug)]
pub struct CertAuthority {
    dir: PathBuf,
}

/// A certificate with its key, and the CA that signed it: what a node's `[tls]` section (or
/// a client's `--ca`, `--cert`, `--key`) names.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl (is it installed?): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "openssl {}: {}",
        args.first().unwrap_or(&""),
        err.lines().next().unwrap_or("failed")
    ))
}

impl CertAuthority {
    /// A new CA (`CN=<name>`, valid for 2 days) in `dir`, created if missing.
    pub fn create(dir: &Path, name: &str) -> Result<CertAuthority, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        Ok(CertAuthority {
            dir: dir.to_path_buf(),
        })
    }

    /// The CA's certificate (PEM): what clients are given as `--ca` / `[tls] ca`.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Signs `<name>.crt` and `<name>.key` for `names` (IP addresses or DNS names), usable by
    /// a server and as a client certificate.
    pub fn issue(&self, name: &str, names: &[&str]) -> Result<TlsFiles, String> {
        let sans: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        let ext = self.dir.join(format!("{name}.ext"));
        let text = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={}\n",
            sans.join(",")
        );
        std::fs::write(&ext, text).map_err(|e| format!("cannot write {}: {e}", ext.display()))?;
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={name}");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        )?;
        let ext_name = format!("{name}.ext");
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext_name,
            ],
        )?;
        Ok(TlsFiles {
            ca: self.cert(),
            cert: self.dir.join(crt),
            key: self.dir.join(key),
        })
    }
}

/// How a node serves TLS: its files, and whether it asks clients for a certificate.
#[derive(Clone, Debug)]
pub struct ServeTls {
    pub files: TlsFiles,
    /// `[tls] client_auth`: mutual TLS.
    pub client_auth: bool,
}

impl TlsFiles {
    /// A client's TLS settings from these files: the CA, and this certificate to show nodes
    /// that ask for one.
    pub fn client(&self) -> Result<gitflock_client::Tls, String> {
        gitflock_client::Tls::from_files(Some(&self.ca), Some(&self.cert), Some(&self.key))
            .map_err(|e| e.0)
    }

    /// The `GITFLOCK_TLS_*` variables that make a node serve with these files.
    pub fn node_env(&self, client_auth: bool) -> Vec<(String, String)> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        vec![
            ("GITFLOCK_TLS_CERT".into(), path(&self.cert)),
            ("GITFLOCK_TLS_KEY".into(), path(&self.key)),
            ("GITFLOCK_TLS_CA".into(), path(&self.ca)),
            ("GITFLOCK_TLS_CLIENT_AUTH".into(), client_auth.to_string()),
        ]
    }
}

/// A `redis-server` on 127.0.0.1 that speaks TLS only (no plaintext port), with the ACL user
/// `gitflock` and a password, and no persistence; killed (SIGKILL) when dropped.
pub struct TlsRedis {
    port: u16,
    password: String,
    process: Process,
}

impl TlsRedis {
    /// Starts it with `files` (its certificate, signed by the CA clients are given) and its
    /// files in `dir`; waits until it listens.
    pub async fn start(dir: &Path, files: &TlsFiles, password: &str) -> Result<TlsRedis, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&files.cert)
            .arg("--tls-key-file")
            .arg(&files.key)
            .arg("--tls-ca-cert-file")
            .arg(&files.ca)
            // Sentinels speak to it over TLS as well (see [`TlsSentinel`]).
            .args([
                "--tls-auth-clients",
                "no",
                "--tls-replication",
                "yes",
                "--dir",
            ])
            .arg(dir)
            // The default user is off: only `gitflock` with its password gets in.
            .args(["--user", "default", "off"])
            .args([
                "--user",
                "gitflock",
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ]);
        let log = dir.join("redis.log");
        let process = spawn_listening("redis-server (tls)", &mut cmd, &log, port).await?;
        Ok(TlsRedis {
            port,
            password: password.to_string(),
            process,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://gitflock:<password>@127.0.0.1:<port>/0`: the URL holds the secret.
    pub fn url(&self) -> String {
        format!(
            "rediss://gitflock:{}@127.0.0.1:{}/0",
            self.password, self.port
        )
    }

    /// How it ended, once, if it exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }
}

/// A Redis Sentinel on 127.0.0.1 that speaks TLS only (to clients and to the Redis it
/// watches), watching a [`TlsRedis`] as `master` (quorum 1) and logging in to it as
/// `gitflock`; killed (SIGKILL) when dropped.
pub struct TlsSentinel {
    port: u16,
    _process: Process,
}

impl TlsSentinel {
    /// Starts it with `files` and its (rewritten) config in `dir`; waits until it listens.
    pub async fn start(
        dir: &Path,
        files: &TlsFiles,
        redis: &TlsRedis,
        master: &str,
    ) -> Result<TlsSentinel, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n\
             sentinel monitor {master} 127.0.0.1 {} 1\n\
             sentinel auth-user {master} gitflock\nsentinel auth-pass {master} {}\n",
            files.cert.display(),
            files.key.display(),
            files.ca.display(),
            redis.port,
            redis.password,
        );
        std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf).arg("--sentinel");
        let log = dir.join("sentinel.log");
        let process = spawn_listening("redis-sentinel (tls)", &mut cmd, &log, port).await?;
        Ok(TlsSentinel {
            port,
            _process: process,
        })
    }

    /// `127.0.0.1:<port>`, as `[redis] sentinels` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts `cmd` (output to `log`) and waits until it listens on 127.0.0.1:`port` (TLS-only
/// servers cannot be asked PING without a TLS client); an error if it exits first.
async fn spawn_listening(
    name: &str,
    cmd: &mut Command,
    log: &Path,
    port: u16,
) -> Result<Process, String> {
    let mut process = Process::spawn(name, cmd, Some(log), false)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    poll_until(&format!("{name} to listen"), REDIS_START, || {
        let exited = process.exited();
        let failed = format!("{name} exited at start; see {}", log.display());
        async move {
            if let Some(status) = exited {
                return Poll::Failed(format!("{failed} ({status})"));
            }
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => Poll::Ready(()),
                Err(_) => Poll::Pending,
            }
        }
    })
    .await?;
    Ok(process)
}
