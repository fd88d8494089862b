//! What to say when a call fails below gRPC: if `--server` names something that is not a
//! gitflock node (the dashboard's port, Redis, a metrics endpoint), the transport error
//! ("h2 protocol error", "operation was canceled") becomes a sentence saying so.

use crate::CliError;
use crate::output::clean;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a server that answers plaintext with a TLS record is.
const OVER_TLS: &str = "serves gRPC over TLS";

/// How a transport-level failure starts (see `From<tonic::Status> for CliError`).
pub const TRANSPORT: &str = "the node stopped answering: ";

/// True for a status that says the connection failed, not the call.
pub fn is_transport(s: &tonic::Status) -> bool {
    use tonic::Code::*;
    let m = s.message();
    matches!(s.code(), Unknown | Unavailable | Internal | Cancelled)
        && [
            "h2 protocol error",
            "http2 error",
            "transport error",
            "operation was canceled",
            "connection",
        ]
        .iter()
        .any(|p| m.contains(p))
}

/// `e`, or, if `server` does not speak HTTP/2 at all, why it is not a gitflock node.
pub async fn explain(server: &str, e: CliError) -> CliError {
    if !e.0.starts_with(TRANSPORT) {
        return e;
    }
    match not_a_node(server).await {
        Some(why) if why.starts_with(OVER_TLS) => CliError(format!("{} {why}", clean(server))),
        Some(why) => CliError(format!("{} is not a gitflock node: {why}", clean(server))),
        None => e,
    }
}

/// Greets `server` as an HTTP/2 client would; None if it answers as HTTP/2 (or cannot be
/// asked: TLS, unreachable), else what it is instead.
async fn not_a_node(server: &str) -> Option<String> {
    let url = gitflock_client::endpoint_url(server).ok()?;
    let authority = url.strip_prefix("http://")?.split('/').next()?.to_string();
    let talk = async {
        let mut sock = tokio::net::TcpStream::connect(&authority).await.ok()?;
        // The client preface and an empty SETTINGS frame.
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        sock.write_all(&hello).await.ok()?;
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 9 {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        Some(got)
    };
    let got = tokio::time::timeout(Duration::from_secs(3), talk)
        .await
        .ok()??;
    describe(&got)
}

/// What the first bytes a server sent say about it (None: an HTTP/2 server).
fn describe(got: &[u8]) -> Option<String> {
    const NODES: &str = "nodes serve gRPC on [node] grpc_listen, 127.0.0.1:6666 by default";
    if got.len() >= 9 && got[3] == 4 {
        return None;
    }
    Some(if got.starts_with(b"HTTP/") {
        format!("it answers plain HTTP, not gRPC (the dashboard? a metrics endpoint?); {NODES}")
    } else if got.starts_with(b"-ERR") || got.starts_with(b"+") {
        format!("it answers like Redis; {NODES}")
    } else if got.first().is_some_and(|b| *b == 0x15 || *b == 0x16) {
        // A TLS record (an alert, a handshake): a node with [tls] on.
        format!("{OVER_TLS}: use https:// and give the cluster's CA (--ca FILE or GITFLOCK_CA)")
    } else if got.is_empty() {
        format!("it closed the connection without answering gRPC; {NODES}")
    } else {
        format!("it does not answer gRPC; {NODES}")
    })
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn first_bytes_tell_what_answered() {
        assert_eq!(describe(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3]), None);
        assert!(
            describe(b"HTTP/1.1 400 Bad Request\r\n")
                .unwrap()
                .contains("dashboard")
        );
        assert!(describe(b"-ERR unknown command").unwrap().contains("Redis"));
        assert!(
            describe(&[0x15, 3, 3, 0, 2, 2, 0x32])
                .unwrap()
                .starts_with(super::OVER_TLS)
        );
        assert!(describe(b"").unwrap().contains("closed"));
    }
}
