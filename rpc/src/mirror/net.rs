//! The sockets under every upstream connection of a mirror run: where they may connect (the
//! SSRF guard of `[mirror] deny_private_networks`, applied to the addresses a name resolves
//! to, before anything is connected) and when they must end (the run's cancellation and
//! deadlines, enforced on the sockets themselves).
//!
//! A run enters a [`Scope`] on the thread that does its git work. Every socket [`connect`]
//! opens there (the native `git://` reader's, and libgit2's through the stream `gitstream.rs`
//! registers) belongs to the scope, and one watchdog thread shuts the sockets of a cancelled
//! or overdue scope down: whatever blocks on them — libgit2's connect and ref listing, which
//! never look at a cancellation token, libssh2, a slow-drip upstream that resets every read
//! timeout — gets an error at once, and the thread is free again.

use socket2::{Domain, Socket, Type};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, LazyLock, Mutex, Once, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the watchdog looks at the scopes, and a connect at its cancellation.
const TICK: Duration = Duration::from_millis(50);

/// A connect and the ref listing that follows end within this, however slowly an upstream
/// drips its bytes (each read alone would wait up to the io timeout, again and again).
pub const LISTING: Duration = Duration::from_secs(120);

/// Why the guard refuses `ip`, or None for a public address. Refused: unspecified and "this
/// network", loopback, private (RFC 1918, unique local), link-local (where cloud metadata
/// services answer: 169.254.169.254), shared CGNAT space (100.64/10), reserved, benchmarking,
/// documentation, multicast and broadcast; IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4)
/// as that IPv4 address, and Teredo tunnels.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_kind(a),
        IpAddr::V6(a) => v6_kind(a),
    }
}

fn v4_kind(a: Ipv4Addr) -> Option<&'static str> {
    match a.octets() {
        [0, ..] => Some("a \"this network\" address"),
        [127, ..] => Some("a loopback address"),
        [10, ..] | [192, 168, ..] => Some("a private address"),
        [172, b, ..] if (16..=31).contains(&b) => Some("a private address"),
        [169, 254, ..] => Some("a link-local address (where cloud metadata services answer)"),
        [100, b, ..] if (64..=127).contains(&b) => Some("a shared (carrier-grade NAT) address"),
        [192, 0, 0, _] | [198, 18 | 19, ..] => Some("a reserved address"),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Some("a documentation address"),
        [a, ..] if a >= 224 => Some("a multicast, reserved or broadcast address"),
        _ => None,
    }
}

fn v6_kind(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    let embedded =
        |hi: u16, lo: u16| v4_kind(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Some("an unspecified address"),
        [0, 0, 0, 0, 0, 0, 0, 1] => Some("a loopback address"),
        [0, 0, 0, 0, 0, 0, hi, lo] => embedded(hi, lo).or(Some("a reserved address")),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 1, ..] => Some("a private (local NAT64) address"),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0x2001, 0, ..] => Some("a Teredo tunnel address"),
        [0x2001, 0xdb8, ..] => Some("a documentation address"),
        [x, ..] if x & 0xfe00 == 0xfc00 => Some("a private (unique local) address"),
        [x, ..] if x & 0xffc0 == 0xfe80 => Some("a link-local address"),
        [x, ..] if x & 0xffc0 == 0xfec0 => Some("a site-local address"),
        [x, ..] if x & 0xff00 == 0xff00 => Some("a multicast address"),
        _ => None,
    }
}

/// The refusal of an address given as a literal in an upstream URL (`host` as
/// `MirrorUrl::host` holds it: `10.0.0.1:9418`, `[::1]`, or a name, which is checked only when
/// it is resolved).
pub fn refused_literal(host: &str) -> Option<String> {
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let ip: IpAddr = bare.parse().ok()?;
    refused_kind(ip).map(|kind| refusal(bare, ip, kind))
}

fn refusal(host: &str, ip: IpAddr, kind: &str) -> String {
    format!("refused to connect to {host} ({ip}): {kind}, and [mirror] deny_private_networks is on")
}

/// What a scope's watchdog checks, and the sockets it cuts.
struct ScopeState {
    cancel: CancellationToken,
    deny_private: bool,
    /// The deadline of the phase under way and what it bounds (e.g. "listing the refs").
    deadline: Mutex<Option<(Instant, Duration, &'static str)>>,
    sockets: Mutex<Sockets>,
}

/// A scope's open sockets, and why they were cut (once they were). Changed only under its
/// lock, which the watchdog holds while it shuts sockets down: it never touches a descriptor
/// after its owner has closed it (the number could belong to another file by then).
#[derive(Default)]
struct Sockets {
    open: Vec<RawFd>,
    cut: Option<String>,
}

impl ScopeState {
    /// Why the scope must end now, if it must.
    fn overdue(&self) -> Option<String> {
        if self.cancel.is_cancelled() {
            return Some("cancelled".into());
        }
        let d = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        d.filter(|(at, ..)| Instant::now() >= *at)
            .map(|(_, within, what)| format!("timed out {what} (after {} s)", within.as_secs()))
    }

    /// Shuts every socket of the scope down, once, for `why`.
    fn cut(&self, why: String) {
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        if s.cut.is_some() {
            return;
        }
        for fd in &s.open {
            // SAFETY: `fd` is open (owners remove it under this lock before closing it);
            // shutdown wakes its readers and writers and closes nothing.
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
        s.cut = Some(why);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<ScopeState>>> = const { RefCell::new(None) };
}

/// Every scope alive, for the watchdog.
static SCOPES: LazyLock<Mutex<Vec<Weak<ScopeState>>>> = LazyLock::new(Default::default);
static WATCHDOG: Once = Once::new();

fn watchdog() {
    loop {
        std::thread::sleep(TICK);
        let live: Vec<Arc<ScopeState>> = {
            let mut all = SCOPES.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for scope in live {
            if let Some(why) = scope.overdue() {
                scope.cut(why);
            }
        }
    }
}

/// A mirror run's network limits on this thread, until dropped.
pub struct Scope {
    /// Kept so the watchdog's weak reference lives as long as the scope.
    _state: Arc<ScopeState>,
    outer: Option<Arc<ScopeState>>,
}

impl Scope {
    /// Sockets connected on this thread from now on end when `cancel` fires; with
    /// `deny_private`, they connect only to public addresses.
    pub fn enter(cancel: &CancellationToken, deny_private: bool) -> Scope {
        WATCHDOG.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("gitflock-net-watchdog".into())
                .spawn(watchdog);
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the network watchdog");
            }
        });
        let state = Arc::new(ScopeState {
            cancel: cancel.clone(),
            deny_private,
            deadline: Mutex::new(None),
            sockets: Mutex::new(Sockets::default()),
        });
        SCOPES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&state));
        let outer = CURRENT.with(|c| c.replace(Some(state.clone())));
        Scope {
            _state: state,
            outer,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.outer.take());
    }
}

fn current() -> Option<Arc<ScopeState>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// True inside a [`Scope`] on this thread.
pub fn in_scope() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// A deadline on what this thread's scope does until the guard drops (`what`: the phase, as
/// an error names it). Without a scope it bounds nothing.
pub struct Deadline(Option<Arc<ScopeState>>);

pub fn deadline(within: Duration, what: &'static str) -> Deadline {
    let scope = current();
    if let Some(s) = &scope {
        *s.deadline.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now() + within, within, what));
    }
    Deadline(scope)
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            *s.deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Why this thread's scope cut its sockets (cancelled, or a deadline passed), if it did or
/// must now: the reason to report in place of whatever error the cut caused.
pub fn cut() -> Option<String> {
    let s = current()?;
    let cut = s
        .sockets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .cut
        .clone();
    cut.or_else(|| s.overdue())
}

/// A connected socket, registered with the scope it was opened in until it is dropped.
pub struct Conn {
    stream: Option<TcpStream>,
    scope: Option<Arc<ScopeState>>,
}

impl Conn {
    pub fn stream(&self) -> &TcpStream {
        self.stream.as_ref().expect("present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if let Some(s) = &self.scope {
            let fd = stream.as_raw_fd();
            let mut sockets = s.sockets.lock().unwrap_or_else(|e| e.into_inner());
            sockets.open.retain(|f| *f != fd);
            drop(stream); // closed under the lock: the watchdog cannot see the number reused
        }
    }
}

/// Resolves `host` and connects to `port` on the first address that answers within
/// `timeout`, under this thread's scope: the guard refuses private addresses (after the name
/// is resolved, before anything is connected), and the connect ends when the scope is
/// cancelled or overdue. The socket is blocking, with `io` as its read and write timeout.
pub fn connect(host: &str, port: u16, timeout: Duration, io: Duration) -> Result<Conn, String> {
    let scope = current();
    let stop = || scope.as_ref().and_then(|s| s.overdue());
    if let Some(why) = stop() {
        return Err(why);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("cannot resolve {host}");
    let mut refused = None;
    for addr in addrs {
        if scope.as_ref().is_some_and(|s| s.deny_private)
            && let Some(kind) = refused_kind(addr.ip())
        {
            refused.get_or_insert_with(|| refusal(host, addr.ip(), kind));
            continue;
        }
        match connect_one(addr, timeout, &stop) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                stream
                    .set_read_timeout(Some(io))
                    .and_then(|_| stream.set_write_timeout(Some(io)))
                    .map_err(|e| format!("{host}: {e}"))?;
                return register(stream, scope);
            }
            Err(Stop(why)) => return Err(why),
            Err(Failed(e)) => last = format!("failed to connect to {host}: {e}"),
        }
    }
    Err(refused.unwrap_or(last))
}

fn register(stream: TcpStream, scope: Option<Arc<ScopeState>>) -> Result<Conn, String> {
    if let Some(s) = &scope {
        let mut sockets = s.sockets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &sockets.cut {
            return Err(why.clone());
        }
        sockets.open.push(stream.as_raw_fd());
    }
    Ok(Conn {
        stream: Some(stream),
        scope,
    })
}

enum ConnectError {
    /// The scope ended: report why, try no other address.
    Stop(String),
    Failed(std::io::Error),
}
use ConnectError::{Failed, Stop};

/// A non-blocking connect, polled so that cancellation ends it at once.
fn connect_one(
    addr: SocketAddr,
    timeout: Duration,
    stop: &dyn Fn() -> Option<String>,
) -> Result<TcpStream, ConnectError> {
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None).map_err(Failed)?;
    socket.set_nonblocking(true).map_err(Failed)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            let started = Instant::now();
            loop {
                if let Some(why) = stop() {
                    return Err(Stop(why));
                }
                let left = timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Failed(std::io::ErrorKind::TimedOut.into()));
                }
                let mut pfd = libc::pollfd {
                    fd: socket.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = left.min(TICK).as_millis() as libc::c_int;
                // SAFETY: one pollfd of an open socket, for at most `ms`.
                let n = unsafe { libc::poll(&mut pfd, 1, ms) };
                if n > 0 {
                    break;
                }
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(Failed(e));
                    }
                }
            }
            if let Some(e) = socket.take_error().map_err(Failed)? {
                return Err(Failed(e));
            }
        }
        Err(e) => return Err(Failed(e)),
    }
    socket.set_nonblocking(false).map_err(Failed)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_every_internal_range_and_lets_public_ones_pass() {
        for refused in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "192.0.0.192",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(refused_kind(ip).is_some(), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "140.82.112.3",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::8.8.8.8",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(refused_kind(ip), None, "{public} is public");
        }
        assert!(
            refused_literal("127.0.0.1:9418")
                .unwrap()
                .contains("loopback")
        );
        assert!(refused_literal("[::1]:22").unwrap().contains("loopback"));
        assert!(refused_literal("[fd00::1]").is_some());
        assert!(
            refused_literal("github.com").is_none(),
            "names are checked when resolved"
        );
        assert!(refused_literal("1.1.1.1:443").is_none());
    }

    #[test]
    fn a_cancelled_scope_cuts_a_blocked_read_and_refuses_new_connects() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let scope = Scope::enter(&cancel, false);
        let conn = connect(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Duration::from_secs(60),
        )
        .unwrap();
        let (_server_side, _) = listener.accept().unwrap();
        let c2 = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c2.cancel();
        });
        let started = Instant::now();
        let mut buf = [0u8; 16];
        // Nothing is ever sent: only the cut ends this read (its timeout is a minute).
        let n = conn.stream().read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(cut().as_deref(), Some("cancelled"));
        let e = connect(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert_eq!(e.err().as_deref(), Some("cancelled"));
        drop(conn);
        drop(scope);
        assert_eq!(cut(), None, "no scope, nothing cut");
    }

    #[test]
    fn the_guard_refuses_after_resolving_before_connecting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let _scope = Scope::enter(&cancel, true);
        let e = connect(
            "localhost",
            port,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("refused to connect to localhost") && e.contains("loopback"),
            "{e}"
        );
        assert!(listener.accept().is_err(), "nothing connected");
    }
}
