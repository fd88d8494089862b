//! gitflock-client: the one gRPC client of gitflock nodes, shared by the CLI, the dashboard,
//! the test harness and the benchmarks (none of which link Redis or git).
//!
//! - [`Client`]: the four service clients of one node, with `authorization: Bearer <token>`
//!   on every call ([`Bearer`]).
//! - [`Client::connect`] dials one node now (the CLI); [`Pool`] keeps lazy channels to several
//!   and fails over between them (the dashboard).
//! - [`endpoint_url`]: `host:port` or `http(s)://host:port`, the one way an address is read.
//! - [`Tls`]: `https://` nodes checked against the cluster's CA, and a client certificate for
//!   nodes that ask for one (mutual TLS).

mod pool;
mod tls;

pub use pool::{Observer, Pool, Quiet, is_unreachable};
pub use tls::Tls;

use gitflock_proto::v1::AskAliveRequest;
use gitflock_proto::v1::chain_client::ChainClient;
use gitflock_proto::v1::mirrors_client::MirrorsClient;
use gitflock_proto::v1::nodes_client::NodesClient;
use gitflock_proto::v1::tasks_client::TasksClient;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A one-line error for people: what failed, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

/// Puts `authorization: Bearer <token>` on every call. The value is private: it is the
/// cluster token.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// Fails on a token that cannot be sent as a header value.
    pub fn new(token: &str) -> Result<Bearer, ClientError> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| ClientError("the token holds characters that cannot be sent".into()))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// The four service clients of one node (cheap to clone: they share one channel).
#[derive(Clone)]
pub struct Client {
    pub tasks: TasksClient<Authed>,
    pub nodes: NodesClient<Authed>,
    pub chain: ChainClient<Authed>,
    pub mirrors: MirrorsClient<Authed>,
}

impl Client {
    /// The clients of an existing channel.
    pub fn new(channel: Channel, bearer: Bearer) -> Client {
        Client {
            tasks: TasksClient::with_interceptor(channel.clone(), bearer.clone()),
            nodes: NodesClient::with_interceptor(channel.clone(), bearer.clone()),
            chain: ChainClient::with_interceptor(channel.clone(), bearer.clone()),
            mirrors: MirrorsClient::with_interceptor(channel, bearer),
        }
    }

    /// Dials `server` (`host:port` or a URL) now, without TLS settings (an `https://` node
    /// needs [`Client::connect_with`]); `timeout` bounds every call made through it.
    pub async fn connect(
        server: &str,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Client, ClientError> {
        Client::connect_with(server, token, timeout, &Tls::default()).await
    }

    /// [`Client::connect`] with TLS settings for `https://` (a bare `host:port` is dialled
    /// over TLS when `tls` has a CA).
    pub async fn connect_with(
        server: &str,
        token: &str,
        timeout: Option<Duration>,
        tls: &Tls,
    ) -> Result<Client, ClientError> {
        const CONNECT: Duration = Duration::from_secs(3);
        let bearer = Bearer::new(token)?;
        let url = tls
            .endpoint_url(server)
            .map_err(|e| ClientError(format!("--server {e}")))?;
        let mut ep = tls
            .endpoint(&url, CONNECT)?
            .connect_timeout(CONNECT)
            .tcp_nodelay(true);
        if let Some(t) = timeout {
            ep = ep.timeout(t);
        }
        let channel = ep.connect().await.map_err(|e| {
            let cause = root_cause(&e);
            let why = tls::explain(&url, &cause).unwrap_or(cause);
            ClientError(format!("cannot reach {server}: {why}"))
        })?;
        let client = Client::new(channel, bearer);
        if url.starts_with("https://") {
            // TLS 1.3 ends the client's side of the handshake before the server has checked
            // the client's certificate (or its absence): a node with [tls] client_auth refuses
            // only once something is sent. Send something now, so that refusal is this
            // error, in words.
            let mut nodes = client.nodes.clone();
            let asked = nodes.ask_alive(AskAliveRequest::default()).await;
            // A failure below gRPC (it has a source: h2, io, TLS), not a node's answer.
            if let Err(s) = asked
                && (std::error::Error::source(&s).is_some() || is_unreachable(&s))
            {
                let why = tls_failure(&s).unwrap_or_else(|| {
                    if tls.has_identity() {
                        "the node closed the TLS connection: does it refuse this client's certificate (not signed by the cluster's CA?)".into()
                    } else {
                        "the node closed the TLS connection: does it ask for a client certificate ([tls] client_auth)? give --cert and --key".into()
                    }
                });
                return Err(ClientError(format!("cannot reach {server}: {why}")));
            }
        }
        Ok(client)
    }
}

/// Why a call failed, when it is about TLS, in words for people: a node that asks for a
/// client certificate, or refuses this one, says so only once the first call is sent (TLS
/// 1.3 ends the handshake before the server has checked the client). None otherwise.
pub fn tls_failure(status: &tonic::Status) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        if let Some(why) = tls::explain("", &e.to_string()) {
            return Some(why);
        }
        cur = e.source();
    }
    None
}

/// `host:port` or `http(s)://host:port` → a URL tonic can dial; an error says what was given.
pub fn endpoint_url(text: &str) -> Result<String, String> {
    let s = text.trim();
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    if s.is_empty()
        || !(url.starts_with("http://") || url.starts_with("https://"))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
        || Endpoint::from_shared(url.clone()).is_err()
    {
        return Err(format!(
            "{:?} is not a node address like 127.0.0.1:6666 or http://127.0.0.1:6666",
            text.chars().take(80).collect::<String>()
        ));
    }
    Ok(url)
}

/// The innermost cause of a transport error: the part a person can act on.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::endpoint_url;

    #[test]
    fn addresses_take_host_port_or_a_url() {
        assert_eq!(
            endpoint_url("127.0.0.1:7001").unwrap(),
            "http://127.0.0.1:7001"
        );
        assert_eq!(endpoint_url(" http://h:1 ").unwrap(), "http://h:1");
        assert_eq!(endpoint_url("https://h:1").unwrap(), "https://h:1");
        for bad in ["", "ftp://h:1", "not a url at all", "h :1"] {
            assert!(endpoint_url(bad).is_err(), "{bad:?}");
        }
    }
}
