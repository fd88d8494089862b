//! libgit2's sockets, made by gitflock: the standard stream registered with libgit2
//! (`git_stream_register`), so every connection it opens — `git://`, `http://`, the socket
//! under `https://` (TLS wraps it) and under `ssh://` (libssh2 reads its descriptor) — is
//! connected by [`super::net::connect`]. There the SSRF guard looks at the resolved addresses
//! before anything is connected, and the socket joins the run's scope, whose watchdog shuts
//! it down when the run is cancelled or overdue: libgit2's connect and ref listing, which
//! never call back into gitflock, end at the run's deadline too.
//!
//! The stream's layout begins as libgit2's own `git_socket_stream` (the stream, host, port,
//! descriptor), because libgit2's ssh transport reads the descriptor through that layout.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::net;

/// `git_stream` (git2/sys/stream.h, `GIT_STREAM_VERSION` 1).
#[repr(C)]
struct GitStream {
    version: c_int,
    /// The bit fields `encrypted:1, proxy_support:1`: 0, a plain socket without a proxy.
    flags: c_uint,
    timeout: c_int,
    connect_timeout: c_int,
    connect: Option<unsafe extern "C" fn(*mut GitStream) -> c_int>,
    certificate: Option<unsafe extern "C" fn(*mut *mut c_void, *mut GitStream) -> c_int>,
    set_proxy: Option<unsafe extern "C" fn(*mut GitStream, *const c_void) -> c_int>,
    read: Option<unsafe extern "C" fn(*mut GitStream, *mut c_void, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut GitStream, *const c_char, usize, c_int) -> isize>,
    close: Option<unsafe extern "C" fn(*mut GitStream) -> c_int>,
    free: Option<unsafe extern "C" fn(*mut GitStream)>,
}

/// `git_socket_stream`'s fields first (the ssh transport reads `fd` as its `s`), then ours.
#[repr(C)]
struct SocketStream {
    parent: GitStream,
    host_c: *mut c_char,
    port_c: *mut c_char,
    fd: c_int,
    host: String,
    port: String,
    conn: Option<net::Conn>,
}

/// `git_stream_registration`.
#[repr(C)]
struct Registration {
    version: c_int,
    init: Option<unsafe extern "C" fn(*mut *mut GitStream, *const c_char, *const c_char) -> c_int>,
    wrap: Option<unsafe extern "C" fn(*mut *mut GitStream, *mut GitStream, *const c_char) -> c_int>,
}

unsafe extern "C" {
    fn git_stream_register(kind: c_int, registration: *mut Registration) -> c_int;
}

const GIT_STREAM_STANDARD: c_int = 1;
const GIT_STREAM_VERSION: c_int = 1;

static CONNECT_MS: AtomicU64 = AtomicU64::new(10_000);
static IO_MS: AtomicU64 = AtomicU64::new(120_000);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the stream with libgit2 (once per process) with these timeouts: a connect gives
/// up after `connect`, a read or write after `io` without progress.
pub fn install(connect: Duration, io: Duration) -> Result<(), String> {
    CONNECT_MS.store(connect.as_millis() as u64, Ordering::Relaxed);
    IO_MS.store(io.as_millis() as u64, Ordering::Relaxed);
    INSTALLED
        .get_or_init(|| {
            libgit2_sys::init();
            let mut r = Registration {
                version: GIT_STREAM_VERSION,
                init: Some(init),
                wrap: None,
            };
            // SAFETY: libgit2 is initialised; it copies the registration.
            match unsafe { git_stream_register(GIT_STREAM_STANDARD, &mut r) } {
                0 => Ok(()),
                rc => Err(format!("libgit2 refused gitflock's socket stream ({rc})")),
            }
        })
        .clone()
}

fn ms(v: &AtomicU64) -> Duration {
    Duration::from_millis(v.load(Ordering::Relaxed))
}

/// Sets libgit2's error message (it copies it).
fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a NUL-terminated string that outlives the call.
    unsafe {
        libgit2_sys::git_error_set_str(libgit2_sys::GIT_ERROR_NET as c_int, c.as_ptr());
    }
}

/// # Safety
/// Called by libgit2 with NUL-terminated `host` and `port` and a place for the stream.
unsafe extern "C" fn init(
    out: *mut *mut GitStream,
    host: *const c_char,
    port: *const c_char,
) -> c_int {
    if out.is_null() || host.is_null() || port.is_null() {
        set_error("no host or port to connect to");
        return -1;
    }
    // SAFETY: libgit2 passes valid C strings.
    let (host, port) = unsafe {
        (
            CStr::from_ptr(host).to_string_lossy().into_owned(),
            CStr::from_ptr(port).to_string_lossy().into_owned(),
        )
    };
    let clamp = |d: Duration| d.as_millis().min(i32::MAX as u128) as c_int;
    let stream = Box::new(SocketStream {
        parent: GitStream {
            version: GIT_STREAM_VERSION,
            flags: 0,
            timeout: clamp(ms(&IO_MS)),
            connect_timeout: clamp(ms(&CONNECT_MS)),
            connect: Some(connect),
            certificate: None,
            set_proxy: None,
            read: Some(read),
            write: Some(write),
            close: Some(close),
            free: Some(free),
        },
        host_c: std::ptr::null_mut(),
        port_c: std::ptr::null_mut(),
        fd: -1,
        host,
        port,
        conn: None,
    });
    // SAFETY: `out` is libgit2's place for the new stream, which it frees through `free`.
    unsafe { *out = Box::into_raw(stream).cast::<GitStream>() };
    0
}

/// # Safety
/// `s` is a stream made by [`init`] (its `GitStream` is the first field).
unsafe fn this<'a>(s: *mut GitStream) -> &'a mut SocketStream {
    // SAFETY: see above; libgit2 uses a stream from one thread at a time.
    unsafe { &mut *s.cast::<SocketStream>() }
}

unsafe extern "C" fn connect(s: *mut GitStream) -> c_int {
    // SAFETY: libgit2 calls back with the stream `init` made.
    let st = unsafe { this(s) };
    let Ok(port) = st.port.parse::<u16>() else {
        set_error(&format!("{}: port {:?} is not a number", st.host, st.port));
        return -1;
    };
    match net::connect(&st.host, port, ms(&CONNECT_MS), ms(&IO_MS)) {
        Ok(conn) => {
            st.fd = conn.stream().as_raw_fd();
            st.conn = Some(conn);
            0
        }
        Err(e) => {
            set_error(&e);
            -1
        }
    }
}

/// The error of a failed read or write: why the scope cut the socket, if it did.
fn io_error(st: &SocketStream, e: &std::io::Error) -> String {
    net::cut().unwrap_or_else(|| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("{}: no data for {} s", st.host, ms(&IO_MS).as_secs())
        }
        _ => format!("{}: {e}", st.host),
    })
}

unsafe extern "C" fn read(s: *mut GitStream, data: *mut c_void, len: usize) -> isize {
    // SAFETY: the stream `init` made, and libgit2's buffer of `len` bytes.
    let (st, buf) = unsafe {
        (
            this(s),
            std::slice::from_raw_parts_mut(data.cast::<u8>(), len),
        )
    };
    let Some(conn) = &st.conn else {
        set_error("read before connect");
        return -1;
    };
    match (&mut conn.stream()).read(buf) {
        // A socket the scope shut down reads as closed: say why instead.
        Ok(0) => match net::cut() {
            Some(why) => {
                set_error(&why);
                -1
            }
            None => 0,
        },
        Ok(n) => n as isize,
        Err(e) => {
            set_error(&io_error(st, &e));
            -1
        }
    }
}

unsafe extern "C" fn write(s: *mut GitStream, data: *const c_char, len: usize, _: c_int) -> isize {
    // SAFETY: the stream `init` made, and libgit2's `len` bytes.
    let (st, buf) = unsafe { (this(s), std::slice::from_raw_parts(data.cast::<u8>(), len)) };
    let Some(conn) = &st.conn else {
        set_error("write before connect");
        return -1;
    };
    match (&mut conn.stream()).write(buf) {
        Ok(n) => n as isize,
        Err(e) => {
            set_error(&io_error(st, &e));
            -1
        }
    }
}

unsafe extern "C" fn close(s: *mut GitStream) -> c_int {
    // SAFETY: the stream `init` made.
    let st = unsafe { this(s) };
    st.conn = None;
    st.fd = -1;
    0
}

unsafe extern "C" fn free(s: *mut GitStream) {
    if !s.is_null() {
        // SAFETY: made by `Box::into_raw` in `init`; libgit2 frees a stream once.
        drop(unsafe { Box::from_raw(s.cast::<SocketStream>()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;
    use tokio_util::sync::CancellationToken;

    fn ls(url: &str) -> Result<usize, String> {
        let mut remote = git2::Remote::create_detached(url).map_err(|e| e.message().to_string())?;
        let conn = remote
            .connect_auth(git2::Direction::Fetch, None, None)
            .map_err(|e| e.message().to_string())?;
        conn.list()
            .map(|l| l.len())
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn libgit2_connects_through_the_guard_and_is_cut_by_the_scope() {
        install(Duration::from_secs(10), Duration::from_secs(120)).unwrap();
        // A server that accepts and then never says a word: libgit2 waits on its read (two
        // minutes, the io timeout) and never looks at a cancellation token.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            c.cancel();
        });
        let started = Instant::now();
        let e = {
            let _scope = net::Scope::enter(&cancel, false);
            ls(&format!("git://127.0.0.1:{port}/x.git")).unwrap_err()
        };
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(e.contains("cancelled"), "{e}");

        // With the guard on, a name that resolves to loopback is refused before a connect.
        silent.set_nonblocking(true).unwrap();
        while silent.accept().is_ok() {}
        let cancel = CancellationToken::new();
        let _scope = net::Scope::enter(&cancel, true);
        for url in [
            format!("git://localhost:{port}/x.git"),
            format!("http://localhost:{port}/x.git"),
            format!("ssh://git@localhost:{port}/x.git"),
        ] {
            let e = ls(&url).unwrap_err();
            assert!(e.contains("deny_private_networks"), "{url}: {e}");
        }
        assert!(silent.accept().is_err(), "nothing connected");
    }

    #[test]
    fn libssh2_speaks_through_the_streams_socket_and_is_cut_too() {
        use std::io::Read;
        install(Duration::from_secs(10), Duration::from_secs(120)).unwrap();
        // An ssh server that reads the client's banner and then says nothing.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let banner = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 8];
            s.read_exact(&mut buf).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            String::from_utf8_lossy(&buf).into_owned()
        });
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            c.cancel();
        });
        let started = Instant::now();
        let e = {
            let _scope = net::Scope::enter(&cancel, false);
            ls(&format!("ssh://git@127.0.0.1:{port}/x.git")).unwrap_err()
        };
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(e.contains("cancelled") || e.contains("SSH"), "{e}");
        // libssh2 wrote its banner on the descriptor the stream connected.
        assert_eq!(banner.join().unwrap(), "SSH-2.0-");
    }
}
