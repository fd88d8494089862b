//! The log chain: every log entry is a git commit on this node's chain.
//!
//! Layout under `<data_dir>/chain/`: `repo.git` (a bare repository; the chain is
//! `refs/heads/chain`, starting at a genesis commit that names the node and the time),
//! `heights` (the commit id of every height, 20 bytes each: height 0 is the genesis) and
//! `lock` (held with flock: one process per chain).
//!
//! One writer thread owns the repository and commits in groups: all requests queued while
//! the previous group was written become one pack (libgit2's in-memory "mempack" backend,
//! dumped and indexed by the ODB pack writer). A write is acknowledged only after, in order:
//! the pack and its index are fsync'd, the branch is moved by compare-and-swap and fsync'd,
//! and the new heights are appended and fsync'd. A crash at any point leaves a chain whose
//! branch only names durable objects; at start the height index is reconciled with the
//! branch. Blocking git work never runs on the async runtime: the writer is its own thread,
//! and reads, verification and pushes run on `spawn_blocking` or as processes.

mod remote;
mod verify;

pub use gitflock_core::clock::Clock;
pub use gitflock_core::log_entry::{self as entry, Entry, Stored};
pub use verify::{BlockCheck, Verdict};

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

pub const BRANCH_REF: &str = "refs/heads/chain";
/// The most entries written as one group (one pack, one fsync round).
const MAX_GROUP: usize = 50_000;
/// Past this many packs the writer consolidates them (`git repack -a -d`) between groups, so
/// reads stay fast; it runs in the writer thread, so no write can race it.
const MAX_PACKS: usize = 64;
const OID_LEN: usize = 20;
/// libgit2's object cache, for the whole process.
const CACHE_BYTES: libc::ssize_t = 16 * 1024 * 1024;

/// The chain's head, as the writer last made it durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub commit: String,
    /// create_at of the newest entry (ms); entries may not go back in time.
    pub last_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The request itself is wrong (nothing of it was written).
    #[error("{0}")]
    Invalid(String),
    #[error("chain: {0}")]
    Io(String),
}

impl From<git2::Error> for ChainError {
    fn from(e: git2::Error) -> Self {
        ChainError::Io(e.message().to_string())
    }
}

impl From<std::io::Error> for ChainError {
    fn from(e: std::io::Error) -> Self {
        ChainError::Io(e.to_string())
    }
}

type Reply = oneshot::Sender<Result<(u64, u64), ChainError>>;

struct WriteRequest {
    entries: Vec<Entry>,
    reply: Reply,
}

pub struct Chain {
    node: String,
    dir: PathBuf,
    tx: mpsc::Sender<WriteRequest>,
    tip: watch::Receiver<Tip>,
    pub clock: Clock,
    /// How far ahead of `clock` a given `create_at` may be (`[chain] max_future_skew_secs`).
    max_future_skew: Duration,
    /// Held for the life of the chain: one process per chain directory.
    _lock: File,
}

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

fn repo_path(dir: &Path) -> PathBuf {
    dir.join("repo.git")
}

impl Chain {
    /// Opens (or creates, with its genesis commit) the chain under `data_dir/chain`. Entries
    /// whose `create_at` is more than `max_future_skew` ahead of `clock` are refused.
    pub fn open(
        node: &str,
        data_dir: &Path,
        clock: Clock,
        max_future_skew: Duration,
    ) -> Result<Arc<Chain>, ChainError> {
        let dir = data_dir.join("chain");
        std::fs::create_dir_all(&dir)?;
        // libgit2 caches parsed objects up to 256 MB per process by default; the chain reads
        // each commit rarely, so a small cache keeps a node's memory flat as the chain grows.
        // SAFETY: a process-wide libgit2 option, set before this process's chain work starts.
        unsafe {
            let _ = git2::opts::set_cache_max_size(CACHE_BYTES);
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } != 0
        {
            return Err(ChainError::Io(format!(
                "{} is in use by another process",
                dir.display()
            )));
        }
        let repo = match git2::Repository::open_bare(repo_path(&dir)) {
            Ok(r) => r,
            Err(_) => git2::Repository::init_bare(repo_path(&dir))?,
        };
        let mut heights = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(dir.join("heights"))?;
        let tip = recover(&repo, &mut heights, node, &clock)?;
        tracing::info!(height = tip.height, commit = %tip.commit, "log chain open");
        if entry::check_not_ahead(tip.last_at, clock.now_ms(), max_future_skew).is_err() {
            // Written before far-future times were refused: entries stamped "now" take the
            // newest entry's time until the clock passes it (entries never go back in time).
            tracing::warn!(
                newest = %entry::format_time(tip.last_at),
                "the chain's newest entry is ahead of this node's clock; new entries carry its time until the clock catches up"
            );
        }
        let (tip_tx, tip_rx) = watch::channel(tip);
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            node: node.to_string(),
            packs: MAX_PACKS,
            heights,
            tip: tip_tx,
            clock: clock.clone(),
            max_future_skew,
        };
        std::thread::Builder::new()
            .name("chain-writer".into())
            .spawn(move || writer.run(repo, rx))?;
        Ok(Arc::new(Chain {
            node: node.to_string(),
            dir,
            tx,
            tip: tip_rx,
            clock,
            max_future_skew,
            _lock: lock,
        }))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn tip(&self) -> Tip {
        self.tip.borrow().clone()
    }

    /// Changes of the tip, for readers that follow.
    pub fn subscribe(&self) -> watch::Receiver<Tip> {
        self.tip.clone()
    }

    pub fn repo_path(&self) -> PathBuf {
        repo_path(&self.dir)
    }

    /// Refuses a `create_at` too far ahead of this chain's clock (the writer checks it again).
    pub fn check_time(&self, create_at: i64) -> Result<(), String> {
        entry::check_not_ahead(create_at, self.clock.now_ms(), self.max_future_skew)
    }

    /// Appends entries (validated by the caller; `create_at` 0 means now) and returns their
    /// heights (first, last) once they are durable.
    pub async fn append(&self, entries: Vec<Entry>) -> Result<(u64, u64), ChainError> {
        if entries.is_empty() {
            return Err(ChainError::Invalid("no entries".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriteRequest { entries, reply })
            .map_err(|_| ChainError::Io("the chain writer stopped".into()))?;
        rx.await
            .map_err(|_| ChainError::Io("the chain writer stopped".into()))?
    }

    /// Reads up to `max` entries from height `from` (1 is the first entry).
    pub async fn read(&self, from: u64, max: usize) -> Result<Vec<Stored>, ChainError> {
        let dir = self.dir.clone();
        let tip = self.tip().height;
        tokio::task::spawn_blocking(move || read_range(&dir, from.max(1), max, tip))
            .await
            .map_err(|e| ChainError::Io(e.to_string()))?
    }

    /// The first height whose entry is at or after `at_ms` (binary search on the heights).
    pub async fn height_at(&self, at_ms: i64) -> Result<u64, ChainError> {
        let dir = self.dir.clone();
        let tip = self.tip().height;
        tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open_bare(repo_path(&dir))?;
            let heights = File::open(dir.join("heights"))?;
            let (mut lo, mut hi) = (1u64, tip + 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                let at = repo.find_commit(oid_at(&heights, mid)?)?.time().seconds() * 1000;
                if at < at_ms - 999 {
                    lo = mid + 1
                } else {
                    hi = mid
                }
            }
            Ok(lo)
        })
        .await
        .map_err(|e| ChainError::Io(e.to_string()))?
    }

    /// Walks the chain and checks it, and the blocks given, against the remote.
    pub async fn verify(
        &self,
        blocks: Vec<BlockCheck>,
        remote: Option<String>,
    ) -> Result<Verdict, ChainError> {
        let dir = self.dir.clone();
        let tip = self.tip();
        tokio::task::spawn_blocking(move || verify::verify(&dir, &tip, &blocks, remote.as_deref()))
            .await
            .map_err(|e| ChainError::Io(e.to_string()))?
    }

    /// Pushes the tip to `remote` as `branch` (never forced). Returns the tip pushed.
    pub async fn push(&self, remote: &str, branch: &str) -> Result<Tip, ChainError> {
        let tip = self.tip();
        remote::push(&self.repo_path(), &tip.commit, remote, branch).await?;
        Ok(tip)
    }
}

fn oid_at(heights: &File, h: u64) -> Result<git2::Oid, ChainError> {
    let mut buf = [0u8; OID_LEN];
    heights.read_exact_at(&mut buf, h * OID_LEN as u64)?;
    Ok(git2::Oid::from_bytes(&buf)?)
}

fn read_range(dir: &Path, from: u64, max: usize, tip: u64) -> Result<Vec<Stored>, ChainError> {
    if from > tip {
        return Ok(Vec::new());
    }
    let repo = git2::Repository::open_bare(repo_path(dir))?;
    let heights = File::open(dir.join("heights"))?;
    let to = tip.min(from + max as u64 - 1);
    let mut out = Vec::with_capacity((to - from + 1) as usize);
    for h in from..=to {
        let oid = oid_at(&heights, h)?;
        let c = repo.find_commit(oid)?;
        let msg = String::from_utf8_lossy(c.message_bytes()).into_owned();
        let entry = Entry::parse(&msg)
            .ok_or_else(|| ChainError::Io(format!("height {h}: malformed entry {oid}")))?;
        out.push(Stored {
            height: h,
            commit: oid.to_string(),
            entry,
        });
    }
    Ok(out)
}

/// Brings the height index in line with the branch (a crash may have left it behind) and
/// makes the genesis commit of a new chain. Returns the tip.
fn recover(
    repo: &git2::Repository,
    heights: &mut File,
    node: &str,
    clock: &Clock,
) -> Result<Tip, ChainError> {
    let len = heights.metadata()?.len();
    let whole = len - len % OID_LEN as u64;
    if whole != len {
        heights.set_len(whole)?;
    }
    let mut known = Vec::new();
    heights.seek(SeekFrom::Start(0))?;
    let mut raw = Vec::new();
    heights.read_to_end(&mut raw)?;
    for c in raw.chunks_exact(OID_LEN) {
        known.push(git2::Oid::from_bytes(c)?);
    }
    let tip_oid = match repo.refname_to_id(BRANCH_REF) {
        Ok(o) => o,
        Err(_) => {
            // A new chain: the genesis, written and made durable like any group.
            let at = clock.now_ms();
            let odb = repo.odb()?;
            let tree = odb.write(git2::ObjectType::Tree, b"")?;
            let body = commit_body(tree, None, node, at, &entry::genesis_message(node, at));
            let oid = odb.write(git2::ObjectType::Commit, body.as_bytes())?;
            sync_loose(repo, &[tree, oid])?;
            repo.reference(BRANCH_REF, oid, false, "genesis")?;
            repo.set_head(BRANCH_REF)?;
            sync_ref(repo)?;
            heights.set_len(0)?;
            heights.write_all(oid.as_bytes())?;
            heights.sync_all()?;
            return Ok(Tip {
                height: 0,
                commit: oid.to_string(),
                last_at: at,
            });
        }
    };
    // Walk back from the branch until a commit the index knows at the right height.
    let position: std::collections::HashMap<git2::Oid, usize> =
        known.iter().enumerate().map(|(i, o)| (*o, i)).collect();
    let mut missing = Vec::new();
    let mut cur = Some(tip_oid);
    let mut anchor = None;
    while let Some(oid) = cur {
        if let Some(&i) = position.get(&oid) {
            anchor = Some(i);
            break;
        }
        missing.push(oid);
        let c = repo.find_commit(oid)?;
        cur = c.parent_ids().next();
    }
    let keep = anchor.map(|i| i + 1).unwrap_or(0);
    if keep != known.len() || !missing.is_empty() {
        tracing::warn!(
            indexed = known.len(),
            keep,
            append = missing.len(),
            "reconciling the chain's height index"
        );
        heights.set_len((keep * OID_LEN) as u64)?;
        for oid in missing.iter().rev() {
            heights.write_all(oid.as_bytes())?;
        }
        heights.sync_all()?;
    }
    let height = (keep + missing.len()) as u64 - 1;
    let c = repo.find_commit(tip_oid)?;
    let msg = String::from_utf8_lossy(c.message_bytes()).into_owned();
    let last_at = Entry::parse(&msg)
        .map(|e| e.create_at)
        .unwrap_or(c.time().seconds() * 1000);
    Ok(Tip {
        height,
        commit: tip_oid.to_string(),
        last_at,
    })
}

/// A commit object's body: the empty tree, one parent, author = committer = the node at
/// `at_ms`, and the message.
fn commit_body(
    tree: git2::Oid,
    parent: Option<git2::Oid>,
    node: &str,
    at_ms: i64,
    message: &str,
) -> String {
    let secs = at_ms.div_euclid(1000);
    let mut s = format!("tree {tree}\n");
    if let Some(p) = parent {
        s.push_str(&format!("parent {p}\n"));
    }
    s.push_str(&format!("author {node} <{node}@gitflock> {secs} +0000\ncommitter {node} <{node}@gitflock> {secs} +0000\n\n{message}"));
    s
}

fn sync_loose(repo: &git2::Repository, oids: &[git2::Oid]) -> std::io::Result<()> {
    let objects = repo.path().join("objects");
    for oid in oids {
        let hex = oid.to_string();
        let d = objects.join(&hex[..2]);
        if let Ok(f) = File::open(d.join(&hex[2..])) {
            f.sync_all()?;
        }
        fsync_dir(&d)?;
    }
    fsync_dir(&objects)
}

fn sync_ref(repo: &git2::Repository) -> std::io::Result<()> {
    let heads = repo.path().join("refs/heads");
    File::open(heads.join("chain"))?.sync_all()?;
    fsync_dir(&heads)
}

struct Writer {
    node: String,
    /// Packs written since the last consolidation (an estimate; checked on disk before
    /// repacking).
    packs: usize,
    heights: File,
    tip: watch::Sender<Tip>,
    clock: Clock,
    max_future_skew: Duration,
}

impl Writer {
    fn run(mut self, repo: git2::Repository, rx: mpsc::Receiver<WriteRequest>) {
        let odb = match repo.odb() {
            Ok(o) => o,
            Err(e) => return tracing::error!(error = %e, "chain: cannot open the object database"),
        };
        let mempack = match odb.add_new_mempack_backend(1000) {
            Ok(m) => m,
            Err(e) => return tracing::error!(error = %e, "chain: cannot add the in-memory pack"),
        };
        let empty_tree = git2::Oid::from_str("4b825dc642cb6eb9a060e54bf8d69288fbee4904")
            .expect("the empty tree id");
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let mut n = group[0].entries.len();
            while n < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.entries.len();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write_group(&repo, &odb, &mempack, empty_tree, &mut group);
            if self.packs >= MAX_PACKS {
                self.consolidate(&repo);
            }
            if let Err(e) = result {
                tracing::error!(error = %e, "chain write failed; nothing of this group was acknowledged");
                let _ = mempack.reset();
                for r in group {
                    let _ = r.reply.send(Err(ChainError::Io(e.to_string())));
                }
            }
        }
    }

    fn consolidate(&mut self, repo: &git2::Repository) {
        let count = std::fs::read_dir(repo.path().join("objects/pack"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                    .count()
            })
            .unwrap_or(0);
        self.packs = count;
        if count < MAX_PACKS {
            return;
        }
        let t0 = std::time::Instant::now();
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(repo.path())
            .args(["-c", "core.fsync=all", "repack", "-a", "-d", "-q"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                self.packs = 1;
                tracing::info!(packs = count, took = ?t0.elapsed(), "consolidated the chain's packs");
            }
            Ok(o) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "git repack failed")
            }
            Err(e) => tracing::warn!(error = %e, "cannot run git repack"),
        }
    }

    /// Writes one group; replies to each request (an out-of-order request alone is refused).
    fn write_group(
        &mut self,
        repo: &git2::Repository,
        odb: &git2::Odb,
        mempack: &git2::Mempack,
        tree: git2::Oid,
        group: &mut Vec<WriteRequest>,
    ) -> Result<(), ChainError> {
        let started = std::time::Instant::now();
        let old = self.tip.borrow().clone();
        let old_oid = git2::Oid::from_str(&old.commit)?;
        let mut parent = old_oid;
        let mut last_at = old.last_at;
        let mut oids = Vec::new();
        let mut spans: Vec<Option<(u64, u64)>> = Vec::with_capacity(group.len());
        let mut refused: Vec<Option<String>> = Vec::with_capacity(group.len());
        for req in group.iter_mut() {
            // A request goes in whole or not at all.
            let clock = self.clock.now_ms();
            let now = clock.max(last_at);
            let mut at = last_at;
            let mut bad = None;
            for e in req.entries.iter_mut() {
                if e.create_at == 0 {
                    e.create_at = now;
                } else if let Err(why) =
                    entry::check_not_ahead(e.create_at, clock, self.max_future_skew)
                {
                    // Every path to the chain comes through here: this is the guarantee.
                    bad = Some(why);
                    break;
                }
                if e.create_at < at {
                    bad = Some(format!(
                        "create_at {} is before the chain's newest entry ({})",
                        entry::format_time(e.create_at),
                        entry::format_time(at)
                    ));
                    break;
                }
                at = e.create_at;
            }
            if let Some(why) = bad {
                spans.push(None);
                refused.push(Some(why));
                continue;
            }
            let first = old.height + oids.len() as u64 + 1;
            for e in &req.entries {
                let body = commit_body(tree, Some(parent), &self.node, e.create_at, &e.message());
                parent = odb.write(git2::ObjectType::Commit, body.as_bytes())?;
                oids.push(parent);
            }
            last_at = at;
            spans.push(Some((first, first + req.entries.len() as u64 - 1)));
            refused.push(None);
        }
        if !oids.is_empty() {
            // 1. The objects, as one pack, durable.
            let mut pack = git2::Buf::new();
            mempack.dump(repo, &mut pack)?;
            let mut w = odb.packwriter()?;
            w.write_all(&pack)?;
            w.commit()?;
            mempack.reset()?;
            let sum = hex::encode(&pack[pack.len() - OID_LEN..]);
            let packs = repo.path().join("objects/pack");
            for ext in ["pack", "idx"] {
                File::open(packs.join(format!("pack-{sum}.{ext}")))?.sync_all()?;
            }
            fsync_dir(&packs)?;
            // 2. The branch, moved only from where we left it, durable.
            repo.reference_matching(BRANCH_REF, parent, true, old_oid, "gitflock: append")?;
            sync_ref(repo)?;
            // 3. The heights.
            let mut bytes = Vec::with_capacity(oids.len() * OID_LEN);
            for o in &oids {
                bytes.extend_from_slice(o.as_bytes());
            }
            self.heights.write_all(&bytes)?;
            self.heights.sync_data()?;
            self.tip.send_replace(Tip {
                height: old.height + oids.len() as u64,
                commit: parent.to_string(),
                last_at,
            });
            self.packs += 1;
            let m = &*crate::metrics::METRICS;
            m.chain_entries.inc_by(oids.len() as u64);
            m.chain_height.set((old.height + oids.len() as u64) as i64);
            m.chain_write_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        for ((req, span), why) in group.drain(..).zip(spans).zip(refused) {
            let r = match (span, why) {
                (Some(s), _) => Ok(s),
                (None, Some(why)) => Err(ChainError::Invalid(why)),
                (None, None) => Err(ChainError::Invalid("refused".into())),
            };
            let _ = req.reply.send(r);
        }
        Ok(())
    }
}
