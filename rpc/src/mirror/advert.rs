//! An upstream's ref advertisement, boiled down to what the unchanged check compares: a digest
//! of every mirrored ref (name and object id, in the order the upstream sends them) and of
//! the default branch, the ref count and the head (blocking: run it off the async runtime).
//!
//! Two readers give the same [`Advert`] for the same upstream:
//! - [`read_git`]: `git://` URLs, read here: one TCP connection, the pkt-lines of the
//!   advertisement hashed as they arrive (no allocation per ref), then a flush so the
//!   upstream's upload-pack ends at once. libgit2 spends most of an unchanged check on its
//!   own parsing of the advertisement (a vector entry and strings per ref, and a memmove of its
//!   receive buffer per line), several times the cost of the network read;
//! - [`read_libgit2`]: every other transport (https, http, ssh, file), through a libgit2
//!   remote with no repository (nothing of the mirror is opened).

use sha2::{Digest as _, Sha256};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the unchanged check keeps of an advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Hex SHA-256 of the mirrored refs (name, raw object id) and of the default branch.
    pub state: String,
    /// Mirrored refs advertised.
    pub refs: u32,
    /// "main 1a2b3c4d…" (default branch and its commit), or "" when there is none.
    pub head: String,
}

/// The refs a mirror keeps: every `refs/*` but peeled tags.
pub fn is_mirrored(name: &str) -> bool {
    name.starts_with("refs/") && !name.ends_with("^{}")
}

/// Accumulates an [`Advert`] over the refs in advertisement order.
pub struct Digest {
    hasher: Sha256,
    refs: u32,
    default_branch: Option<String>,
    head_oid: Option<String>,
}

impl Digest {
    /// `default_branch`: the target of the upstream's HEAD, if it said.
    pub fn new(default_branch: Option<String>) -> Self {
        Self {
            hasher: Sha256::new(),
            refs: 0,
            default_branch,
            head_oid: None,
        }
    }

    /// One advertised ref (`oid`: the raw object id). Refs that are not mirrored are ignored.
    pub fn add(&mut self, name: &str, oid: &[u8]) {
        if !is_mirrored(name) {
            return;
        }
        self.refs += 1;
        self.hasher.update(name.as_bytes());
        self.hasher.update(b" ");
        self.hasher.update(oid);
        self.hasher.update(b"\n");
        if self.head_oid.is_none() && self.default_branch.as_deref() == Some(name) {
            self.head_oid = Some(hex::encode(oid));
        }
    }

    pub fn finish(mut self) -> Advert {
        // A default branch the upstream does not have (an empty repository) is none.
        let branch = self.default_branch.filter(|_| self.head_oid.is_some());
        self.hasher.update(b"HEAD ");
        self.hasher
            .update(branch.as_deref().unwrap_or("").as_bytes());
        let head = match (&branch, &self.head_oid) {
            (Some(b), Some(oid)) => format!("{} {oid}", b.strip_prefix("refs/heads/").unwrap_or(b)),
            _ => String::new(),
        };
        Advert {
            state: hex::encode(self.hasher.finalize()),
            refs: self.refs,
            head,
        }
    }
}

static CONNECT_TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);
static IO_TIMEOUT_MS: AtomicU64 = AtomicU64::new(120_000);

/// The network timeouts of [`read_git`] (libgit2 has its own, process-wide).
pub fn set_timeouts(connect: Duration, io: Duration) {
    CONNECT_TIMEOUT_MS.store(connect.as_millis() as u64, Ordering::Relaxed);
    IO_TIMEOUT_MS.store(io.as_millis() as u64, Ordering::Relaxed);
}

/// How long a blocked read waits before it looks at the cancellation token again.
const CANCEL_POLL: Duration = Duration::from_millis(250);
/// The longest pkt-line (git's LARGE_PACKET_MAX).
const PKT_MAX: usize = 65520;

/// Reads the advertisement of a `git://` URL; `None` for any other URL (and for `git://` URLs
/// this reader leaves to libgit2: percent escapes or a `~user` path).
pub fn read_git(url: &str, cancel: &CancellationToken) -> Option<Result<Advert, String>> {
    let rest = url.strip_prefix("git://")?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty()
        || authority.contains('@')
        || path.contains(['%', '\0', '\n', ' '])
        || path.starts_with("/~")
    {
        return None;
    }
    // host, [v6], host:port or [v6]:port
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            let port = match after {
                "" => 9418,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (h, port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, 9418u16),
        },
    };
    Some(read_git_at(host, port, path, cancel))
}

fn read_git_at(
    host: &str,
    port: u16,
    path: &str,
    cancel: &CancellationToken,
) -> Result<Advert, String> {
    let connect = Duration::from_millis(CONNECT_TIMEOUT_MS.load(Ordering::Relaxed));
    let io = Duration::from_millis(IO_TIMEOUT_MS.load(Ordering::Relaxed));
    // Resolved, checked by the address guard and connected in the run's scope, which cuts
    // the socket at the run's cancellation or deadline.
    let conn = super::net::connect(host, port, connect, io)?;
    let mut stream = conn.stream();
    stream
        .set_read_timeout(Some(CANCEL_POLL))
        .and_then(|_| stream.set_write_timeout(Some(io)))
        .map_err(|e| format!("{host}: {e}"))?;
    // The request, as git sends it: `git-upload-pack <path>\0host=<host>\0`.
    let body = format!("git-upload-pack {path}\0host={host}\0");
    stream
        .write_all(format!("{:04x}{body}", body.len() + 4).as_bytes())
        .map_err(|e| format!("{host}: cannot send the request: {e}"))?;

    let mut reader = Reader {
        inner: BufReader::with_capacity(64 * 1024, stream),
        cancel,
        io,
        host,
    };
    let mut line = Vec::with_capacity(512);
    let mut digest: Option<Digest> = None;
    loop {
        // An upstream that never stops sending is stopped by a kill or the run's timeout.
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        if !reader.pkt(&mut line)? {
            break; // flush: the end of the advertisement
        }
        if let Some(msg) = line.strip_prefix(b"ERR ") {
            // The upstream's words: shown in lists and terminals, so escapes are made visible.
            let msg = String::from_utf8_lossy(msg);
            let msg = gitflock_core::task::printable_name(msg.trim_end());
            return Err(format!("remote error: {msg}"));
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let (refpart, caps) = match text.iter().position(|&b| b == 0) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        if digest.is_none() {
            // The first line carries the capabilities; HEAD's target is one of them.
            let branch = caps.and_then(|c| {
                c.split(|&b| b == b' ')
                    .find_map(|cap| cap.strip_prefix(b"symref=HEAD:"))
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .map(str::to_string)
            });
            digest = Some(Digest::new(branch));
        }
        let d = digest.as_mut().expect("set above");
        let bad = || format!("{host}: malformed ref advertisement");
        if refpart.len() < 42 || refpart[40] != b' ' {
            return Err(bad());
        }
        let mut oid = [0u8; 20];
        hex::decode_to_slice(&refpart[..40], &mut oid).map_err(|_| bad())?;
        let name = std::str::from_utf8(&refpart[41..]).map_err(|_| bad())?;
        d.add(name, &oid);
    }
    // Tell upload-pack we want nothing, so it ends now rather than on a closed socket.
    let _ = stream.write_all(b"0000");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(digest.unwrap_or_else(|| Digest::new(None)).finish())
}

struct Reader<'a, R> {
    inner: BufReader<R>,
    cancel: &'a CancellationToken,
    io: Duration,
    host: &'a str,
}

impl<R: Read> Reader<'_, R> {
    /// The next pkt-line's payload into `out`; false at a flush packet.
    fn pkt(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        let mut len = [0u8; 4];
        self.exact(&mut len)?;
        let bad = || format!("{}: malformed pkt-line", self.host);
        let s = std::str::from_utf8(&len).map_err(|_| bad())?;
        let n = usize::from_str_radix(s, 16).map_err(|_| bad())?;
        if n == 0 {
            return Ok(false);
        }
        if !(4..=PKT_MAX).contains(&n) {
            return Err(bad());
        }
        out.clear();
        out.resize(n - 4, 0);
        self.exact(out)?;
        Ok(true)
    }

    /// `read_exact` that gives up on cancellation, or after `io` without a byte.
    fn exact(&mut self, mut buf: &mut [u8]) -> Result<(), String> {
        let mut idle = Instant::now();
        while !buf.is_empty() {
            match self.inner.read(buf) {
                Ok(0) => {
                    // A socket the run's scope shut down (cancelled, overdue) reads as closed.
                    return Err(super::net::cut().unwrap_or_else(|| {
                        format!(
                            "{}: the upstream closed the connection early (no such repository?)",
                            self.host
                        )
                    }));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    idle = Instant::now();
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        || e.kind() == ErrorKind::Interrupted =>
                {
                    if self.cancel.is_cancelled() {
                        return Err("cancelled".into());
                    }
                    if idle.elapsed() >= self.io {
                        return Err(format!("{}: timed out reading the refs", self.host));
                    }
                }
                Err(e) => {
                    return Err(super::net::cut().unwrap_or_else(|| format!("{}: {e}", self.host)));
                }
            }
        }
        Ok(())
    }
}

/// The digest of a ref listing, and the upstream's default branch (what its `HEAD` names).
pub(super) fn digest_listing(heads: &[git2::RemoteHead<'_>]) -> (Advert, Option<String>) {
    let branch = heads
        .iter()
        .find(|h| h.name() == "HEAD")
        .and_then(|h| h.symref_target().map(str::to_string));
    let mut d = Digest::new(branch.clone());
    for h in heads {
        d.add(h.name(), h.oid().as_bytes());
    }
    (d.finish(), branch)
}

/// Reads the advertisement of any URL libgit2 can fetch from, through a remote with no
/// repository (credentials from the URL or the ssh agent, as for a fetch).
pub fn read_libgit2(url: &str, cancel: &CancellationToken) -> Result<Advert, String> {
    let mut remote = git2::Remote::create_detached(url).map_err(super::remote::clean)?;
    let conn = super::remote::connect(&mut remote, url, cancel)?;
    let heads = conn.list().map_err(|e| super::remote::failed(e, cancel))?;
    Ok(digest_listing(heads).0)
}
