//! gRPC over TLS for this node (`[tls]`): what its server shows and asks of clients, and how
//! it dials the other nodes (its AskAlive probes).
//!
//! With TLS on, both of the node's servers (the start-up one that serves health while Redis
//! is away, and the full one) speak TLS only: a plaintext client fails the handshake.
//! Under `client_auth` every client must show a certificate signed by `[tls] ca`; the node's
//! own certificate is what its probes show, so one certificate per node serves both ways
//! (its extended key usage must allow serverAuth and clientAuth).

use anyhow::Context;
use gitflock_client::Tls;
use gitflock_core::config::TlsConfig;
use std::time::Duration;
use tonic::transport::server::Server;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A client that connects and then says nothing must not hold a handshake slot forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's TLS settings, read once at start.
#[derive(Clone, Default)]
pub struct NodeTls {
    /// The servers' TLS; None: plaintext (TLS is off).
    server: Option<ServerTlsConfig>,
    /// How this node dials `https://` nodes: the CA, and its own certificate as the client
    /// certificate.
    pub dial: Tls,
}

impl NodeTls {
    /// Reads the files `[tls]` names (the config load checked they hold PEM).
    pub fn load(config: &TlsConfig) -> anyhow::Result<NodeTls> {
        let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
            return Ok(NodeTls::default());
        };
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path)
                .with_context(|| format!("cannot read [tls] {what} {}", path.display()))
        };
        let identity = Identity::from_pem(read("cert", cert)?, read("key", key)?);
        let mut server = ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT);
        if config.client_auth
            && let Some(ca) = &config.ca
        {
            server = server.client_ca_root(Certificate::from_pem(read("ca", ca)?));
        }
        let dial = Tls::from_files(config.ca.as_deref(), Some(cert), Some(key))
            .map_err(|e| anyhow::anyhow!("[tls]: {e}"))?;
        // A wrong key or certificate is a start-up error, not a failure at every connection.
        Server::builder().tls_config(server.clone()).map_err(|e| {
            anyhow::anyhow!("[tls] cert and key: {}", gitflock_client::root_cause(&e))
        })?;
        Ok(NodeTls {
            server: Some(server),
            dial,
        })
    }

    /// True when the node serves TLS.
    pub fn enabled(&self) -> bool {
        self.server.is_some()
    }

    /// A server builder that speaks TLS when it is on.
    pub fn server(&self) -> anyhow::Result<Server> {
        let builder = Server::builder();
        match &self.server {
            Some(tls) => builder
                .tls_config(tls.clone())
                .map_err(|e| anyhow::anyhow!("[tls]: {}", gitflock_client::root_cause(&e))),
            None => Ok(builder),
        }
    }
}
