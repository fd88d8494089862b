//! TLS to nodes: an `https://` node is checked against the CA that signs the nodes'
//! certificates (there are no built-in roots: a cluster's CA is its own), and, where a node
//! asks for mutual TLS, this client shows a certificate of its own.
//!
//! The PEM is checked when it is loaded, so a wrong file is an error at start ("holds no
//! certificate") rather than every connection failing later with "unknown issuer".

use crate::ClientError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How this client dials `https://` nodes. [`Tls::default`] has no CA: it dials `http://`
/// only, and refuses an `https://` address with a hint.
#[derive(Clone, Default)]
pub struct Tls {
    /// The CA (one or more PEM certificates) a node's certificate must chain to.
    ca: Option<Certificate>,
    /// The certificate chain and key shown to nodes that ask for one (mutual TLS).
    identity: Option<Identity>,
}

impl std::fmt::Debug for Tls {
    // The identity holds a private key: only whether each part is set is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError(format!("cannot read the {what} {}: {e}", path.display())))
}

impl Tls {
    /// From PEM files: `ca` (the CA that signs the nodes' certificates) and, for nodes that
    /// ask for a client certificate, `cert` and its `key`.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Tls, ClientError> {
        let mut tls = Tls::default();
        if let Some(path) = ca {
            let pem = read("CA file", path)?;
            tls.ca = Some(
                ca_certificate(&pem)
                    .map_err(|why| ClientError(format!("the CA file {} {why}", path.display())))?,
            );
        }
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = (read("certificate", cert)?, read("key", key)?);
                let certs = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default();
                if certs.is_empty() {
                    return Err(ClientError(format!(
                        "the certificate file {} holds no PEM certificate",
                        cert.display()
                    )));
                }
                if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
                    return Err(ClientError(format!(
                        "the key file {} holds no unencrypted PEM private key",
                        key.display()
                    )));
                }
                tls.identity = Some(Identity::from_pem(cert_pem, key_pem));
            }
            (None, None) => {}
            _ => {
                return Err(ClientError(
                    "a client certificate needs both the certificate and its key".into(),
                ));
            }
        }
        Ok(tls)
    }

    /// True when `https://` nodes can be dialled (a CA is set).
    pub fn has_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// True when this client shows a certificate to nodes that ask for one.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// `text` (`host:port` or a URL) as a URL: a bare `host:port` is `https://` when a CA is
    /// set (TLS is what the caller asked for), else `http://`.
    pub fn endpoint_url(&self, text: &str) -> Result<String, String> {
        let t = text.trim();
        if self.has_ca() && !t.contains("://") && !t.is_empty() {
            return crate::endpoint_url(&format!("https://{t}"));
        }
        crate::endpoint_url(text)
    }

    /// An endpoint for `url` (already through [`crate::endpoint_url`]): for `https://`, TLS
    /// checked against the CA, with this client's certificate if it has one; `handshake`
    /// bounds the TLS handshake.
    pub(crate) fn endpoint(&self, url: &str, handshake: Duration) -> Result<Endpoint, ClientError> {
        let ep = Endpoint::from_shared(url.to_string())
            .map_err(|_| ClientError(format!("{url:?} is not a node address")))?;
        if !url.starts_with("https://") {
            return Ok(ep);
        }
        let Some(ca) = &self.ca else {
            return Err(ClientError(format!(
                "{url} is https://: give the CA that signs the nodes' certificates (--ca FILE or GITFLOCK_CA; [tls] ca in a config)"
            )));
        };
        let mut config = ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .timeout(handshake);
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        ep.tls_config(config)
            .map_err(|e| ClientError(format!("TLS settings for {url}: {}", crate::root_cause(&e))))
    }
}

/// The CA's certificates; an error (completing "the CA file <path> …") if there are none.
fn ca_certificate(pem: &[u8]) -> Result<Certificate, &'static str> {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|_| "holds a malformed PEM certificate")?;
        n += 1;
    }
    if n == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(Certificate::from_pem(pem))
}

/// What a failed TLS connection means to a person, from the innermost error's text (rustls
/// and h2 say it in their own terms); None when it is not about TLS.
pub(crate) fn explain(url: &str, cause: &str) -> Option<String> {
    let c = cause.to_ascii_lowercase();
    let why = if c.contains("unknownissuer") || c.contains("unknown issuer") {
        "the node's certificate is not signed by the given CA"
    } else if c.contains("notvalidforname") || c.contains("not valid for name") {
        "the node's certificate does not name the host in the address"
    } else if c.contains("expired") {
        "the node's certificate has expired (or is not valid yet): check both clocks"
    } else if c.contains("certificaterequired") || c.contains("certificate required") {
        "the node asks for a client certificate (mutual TLS): give one (--cert and --key; [tls] cert and key)"
    } else if c.contains("certificateunknown")
        || c.contains("badcertificate")
        || c.contains("bad certificate")
        || c.contains("unknownca")
        || c.contains("unknown ca")
    {
        "the node refused this client's certificate (not signed by the cluster's CA?)"
    } else if url.starts_with("http://")
        && (c.contains("frame with invalid size")
            || c.contains("connection reset")
            || c.contains("broken pipe")
            || c.contains("unexpected eof")
            || c.contains("protocol error"))
    {
        "plaintext was refused: if the node serves TLS, use https:// and give its CA (--ca)"
    } else {
        return None;
    };
    Some(format!("{why} ({cause})"))
}
