//! Ports on 127.0.0.1: a free one, or the one asked for when it is free.

use std::net::{SocketAddr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("no free port: {e}"))?;
    Ok(addr.port())
}

/// `want` if it can be bound now, else a free port on the same address.
pub fn addr_or_free(want: SocketAddr) -> Result<SocketAddr, String> {
    if TcpListener::bind(want).is_ok() {
        return Ok(want);
    }
    let l = TcpListener::bind((want.ip(), 0)).map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map_err(|e| format!("no free port: {e}"))
}

/// Port `want` on 127.0.0.1 if it is free, else a free one.
pub fn port_or_free(want: u16) -> Result<u16, String> {
    addr_or_free(SocketAddr::from(([127, 0, 0, 1], want))).map(|a| a.port())
}
