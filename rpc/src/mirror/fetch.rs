//! Bringing one bare mirror up to date (blocking: run it with `spawn_blocking`).
//!
//! A run first checks: the upstream's ref advertisement, boiled down to a digest
//! ([`super::advert`]), against the one the mirror kept from its last run; when they match
//! the run ends there, with nothing of the mirror opened (no negotiation, no pack). Otherwise
//! one libgit2 connection lists the refs again, compares them with the mirror's and fetches
//! `+refs/*:refs/*` over the same connection; refs the upstream no longer has are deleted, and
//! HEAD follows the upstream's default branch. Cancellation (kill, timeout, shutdown) is
//! checked in the transfer callbacks; connect and read timeouts are libgit2's process-wide
//! ones, set at start by [`super::set_timeouts`] (which also sets the native reader's). Credentials
//! callbacks try once each, never loop. At most `host_connections` connects and listings run
//! at once per upstream host. When fetches have left more than [`REPACK_PACKS`] packs,
//! `git repack -a -d` folds them.

use git2::{AutotagOption, FetchOptions, Repository};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// More packs than this and the mirror is repacked after the fetch.
pub const REPACK_PACKS: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The mirror did not exist before this run.
    pub cloned: bool,
    pub added: u32,
    pub updated: u32,
    pub deleted: u32,
    /// Refs in the mirror now.
    pub refs: u32,
    /// "main 1a2b3c4d…" (default branch and its commit), or "" for an empty upstream.
    pub head: String,
    pub bytes: u64,
    pub duration: Duration,
}

impl Report {
    pub fn changed(&self) -> bool {
        self.cloned || self.added + self.updated + self.deleted > 0
    }

    pub fn summary(&self) -> String {
        let ms = self.duration.as_millis();
        if !self.changed() {
            return format!("unchanged ({} refs, checked in {ms} ms)", self.refs);
        }
        format!(
            "{}{} added, {} updated, {} deleted; head {}; {} bytes in {ms} ms",
            if self.cloned { "cloned: " } else { "" },
            self.added,
            self.updated,
            self.deleted,
            if self.head.is_empty() {
                "none"
            } else {
                &self.head
            },
            self.bytes
        )
    }
}

/// Mirrors being synced in this process: a second run of the same mirror (a retry while a
/// timed-out one still winds down) waits for the first rather than racing it.
static BUSY: LazyLock<Mutex<std::collections::HashSet<std::path::PathBuf>>> =
    LazyLock::new(Default::default);

struct BusyGuard(std::path::PathBuf);
impl Drop for BusyGuard {
    fn drop(&mut self) {
        BUSY.lock().unwrap().remove(&self.0);
    }
}

fn claim_dir(dir: &Path, cancel: &CancellationToken) -> Result<BusyGuard, String> {
    loop {
        if BUSY.lock().unwrap().insert(dir.to_path_buf()) {
            return Ok(BusyGuard(dir.to_path_buf()));
        }
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The file in a mirror that holds the digest of the upstream's ref list as of the last
/// successful run: when the upstream advertises the same list again, the run ends without
/// reading a single local ref.
const STATE_FILE: &str = "gitflock-upstream";

use super::advert::{Advert, is_mirrored};

/// Connections being opened per upstream host in this process, and how many may be: an
/// upstream is not stormed with connects (a `git daemon` listens with a backlog of 5; a burst
/// beyond it costs each dropped connect a 1 s SYN retry, and forges rate-limit).
static CONNECTING: LazyLock<Mutex<HashMap<String, HostState>>> = LazyLock::new(Default::default);

/// One host's connects: how many are open, how many runs wait for one, and their wake-up
/// (each freed slot wakes one waiter of that host, not every waiting run).
#[derive(Default)]
struct HostState {
    open: usize,
    waiting: usize,
    wake: Arc<Condvar>,
}

struct HostSlot(String);
impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut m = CONNECTING.lock().unwrap();
        if let Some(h) = m.get_mut(&self.0) {
            h.open -= 1;
            if h.waiting > 0 {
                h.wake.notify_one();
            } else if h.open == 0 {
                m.remove(&self.0);
            }
        }
    }
}

fn host_slot(host: &str, limit: usize, cancel: &CancellationToken) -> Result<HostSlot, String> {
    let mut m = CONNECTING.lock().unwrap();
    loop {
        let h = m.entry(host.to_string()).or_default();
        if h.open < limit.max(1) {
            h.open += 1;
            return Ok(HostSlot(host.to_string()));
        }
        if cancel.is_cancelled() {
            if h.open == 0 && h.waiting == 0 {
                m.remove(host);
            }
            return Err("cancelled".into());
        }
        h.waiting += 1;
        let wake = h.wake.clone();
        // A timeout, so a cancelled run notices.
        m = wake.wait_timeout(m, Duration::from_millis(50)).unwrap().0;
        if let Some(h) = m.get_mut(host) {
            h.waiting -= 1;
        }
    }
}

/// The upstream's advertisement: read by gitflock itself for `git://`, by libgit2 otherwise.
pub fn check(url: &str, cancel: &CancellationToken) -> Result<Advert, String> {
    super::advert::read_git(url, cancel).unwrap_or_else(|| super::advert::read_libgit2(url, cancel))
}

/// Brings the bare mirror at `dir` up to date with `url` (whose upstream is `host`; at most
/// `host_connections` connects to one host at a time). Errors are one line, with any
/// credentials masked.
pub fn sync(
    dir: &Path,
    url: &str,
    host: &str,
    host_connections: usize,
    cancel: &CancellationToken,
) -> Result<Report, String> {
    let started = Instant::now();
    // Sockets end when `cancel` fires, even inside libgit2 (a caller may have entered a scope
    // of its own, with the address guard).
    let _scope = (!super::net::in_scope()).then(|| super::net::Scope::enter(cancel, false));
    let _busy = claim_dir(dir, cancel)?;
    let state_file = dir.join(STATE_FILE);
    // The unchanged check: the upstream's advertisement against the digest the last run left,
    // with nothing of the mirror opened or read.
    if let Ok(last) = std::fs::read_to_string(&state_file)
        && dir.join("HEAD").is_file()
    {
        let ad = {
            let _slot = host_slot(host, host_connections, cancel)?;
            let _listing = super::net::deadline(super::net::LISTING, "listing the refs");
            check(url, cancel)?
        };
        if ad.state == last.trim() {
            return Ok(Report {
                refs: ad.refs,
                head: ad.head,
                duration: started.elapsed(),
                ..Report::default()
            });
        }
    }
    let clean = super::remote::clean;
    let (repo, cloned) = open_or_init(dir)?;

    let mut remote = repo.remote_anonymous(url).map_err(clean)?;
    let slot = host_slot(host, host_connections, cancel)?;
    let listing = super::net::deadline(super::net::LISTING, "listing the refs");
    let mut conn = super::remote::connect(&mut remote, url, cancel)?;
    let heads = conn.list().map_err(|e| super::remote::failed(e, cancel))?;
    let (Advert { state, head, .. }, default_branch) = super::advert::digest_listing(heads);
    let default_branch = default_branch.filter(|_| !head.is_empty());
    // The connect and the ref listing are done; a fetch (long, or nothing) holds no slot and
    // is bounded by the run's own timeout.
    drop(listing);
    drop(slot);
    let upstream: BTreeMap<String, git2::Oid> = heads
        .iter()
        .filter(|h| is_mirrored(h.name()))
        .map(|h| (h.name().to_string(), h.oid()))
        .collect();

    let before = local_refs(&repo).map_err(clean)?;
    let mut report = Report {
        cloned,
        ..Report::default()
    };
    for (name, oid) in &upstream {
        match before.get(name) {
            None => report.added += 1,
            Some(o) if o != oid => report.updated += 1,
            _ => {}
        }
    }
    report.deleted = before.keys().filter(|n| !upstream.contains_key(*n)).count() as u32;

    // Prune first (refs the upstream no longer has), so a deleted `a` never blocks a new `a/b`.
    for name in before.keys().filter(|n| !upstream.contains_key(*n)) {
        if let Ok(mut r) = repo.find_reference(name) {
            r.delete().map_err(clean)?;
        }
    }
    if report.added + report.updated > 0 {
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(super::remote::callbacks(url, cancel));
        opts.download_tags(AutotagOption::None);
        opts.update_fetchhead(false);
        let r = conn.remote();
        r.fetch(&["+refs/*:refs/*"], Some(&mut opts), None)
            .map_err(|e| super::remote::failed(e, cancel))?;
        report.bytes = r.stats().received_bytes() as u64;
    }
    drop(conn);
    // Follow the upstream's default branch.
    if let Some(target) = &default_branch {
        let current = repo
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string));
        if current.as_deref() != Some(target) {
            repo.set_head(target).map_err(clean)?;
        }
    }
    if report.changed() {
        // libgit2 writes every fetched ref as a loose file; reading thousands of them costs
        // more than the network check. Fold them into packed-refs.
        repo.refdb_compress().map_err(clean)?;
        let after = local_refs(&repo).map_err(clean)?;
        if after != upstream {
            return Err(format!(
                "the mirror does not match the upstream after the fetch ({} refs here, {} upstream)",
                after.len(),
                upstream.len()
            ));
        }
    }
    report.refs = upstream.len() as u32;
    report.head = head;
    maybe_repack(dir, cancel)?;
    // Only now that the mirror matches: the next unchanged run may skip reading refs.
    std::fs::write(&state_file, format!("{state}\n"))
        .map_err(|e| format!("cannot write {}: {e}", state_file.display()))?;
    report.duration = started.elapsed();
    Ok(report)
}

fn open_or_init(dir: &Path) -> Result<(Repository, bool), String> {
    let head = dir.join("HEAD");
    if head.exists() && !head.is_file() {
        // Not a repository of ours (storage paths never nest, so no mirror lives in there):
        // removing it could remove what someone else keeps.
        return Err(format!(
            "{} is not a mirror (its HEAD is not a file); leaving it alone",
            dir.display()
        ));
    }
    if head.is_file() {
        match Repository::open_bare(dir) {
            Ok(r) => return Ok((r, false)),
            Err(e) => {
                // Not a repository we can use (a crash mid-init): start it again.
                tracing::warn!(dir = %dir.display(), error = %e.message(), "re-creating a broken mirror");
                std::fs::remove_dir_all(dir)
                    .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
            }
        }
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let repo = Repository::init_bare(dir).map_err(|e| e.message().to_string())?;
    Ok((repo, true))
}

fn local_refs(repo: &Repository) -> Result<BTreeMap<String, git2::Oid>, git2::Error> {
    let mut out = BTreeMap::new();
    for r in repo.references()? {
        let r = r?;
        if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
            out.insert(name.to_string(), oid);
        }
    }
    Ok(out)
}

/// Counts packs; above the limit runs `git repack -a -d` (killed on cancel).
fn maybe_repack(dir: &Path, cancel: &CancellationToken) -> Result<(), String> {
    let packs = pack_count(dir);
    if packs <= REPACK_PACKS {
        return Ok(());
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["repack", "-a", "-d", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run git repack: {e}"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("git repack failed: {status}"))
            };
        }
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("cancelled".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many packs a mirror holds (for tests and status).
pub fn pack_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("objects/pack"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
                .count()
        })
        .unwrap_or(0)
}
