//! The upstream list (`[mirror] list_url`): a git repository in compass-ci's
//! `upstream-repos` format, read by the master every `list_refresh_secs`.
//!
//! Every tracked file is an entry (its path is the entry's name), YAML with a `url:` list (or
//! a single string) of which the first is used; files named `DEFAULTS` or `.ignore`, and any
//! other dot-file, are skipped. Each entry becomes a `mirror` task (created once: the task id
//! is the repository's identity); entries the list no longer has are deleted — but only
//! tasks the list created (`P:listed`), and never a large share at once: when a sync would
//! remove more than `list_max_remove_percent` of the listed mirrors (and more than
//! [`REMOVE_FLOOR`]), or the list reads as empty, nothing is removed and the refusal is
//! recorded as the list's `last_error` until the list (or the setting) changes.
//!
//! The list is hostile input read by the master (and by the next master at once if it
//! fails): an entry file over [`MAX_ENTRY_BYTES`] is never read, YAML with aliases (an alias
//! bomb of a few hundred bytes expands to billions of nodes), nesting over
//! [`MAX_YAML_DEPTH`] or more than [`MAX_YAML_NODES`] nodes is refused before it is loaded,
//! and so is a file whose name holds a control character. Such a file is skipped and named
//! (escaped) in the list's `last_error`; the rest of the list still syncs. A list of more than
//! [`MAX_LIST_FILES`] files is refused whole.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::MirrorUrl;
use crate::cluster::lease::Lease;
use crate::store::{ListStatus, NewTask, Placement, Store};

/// Removing this many listed mirrors is always allowed, whatever the share.
pub const REMOVE_FLOOR: usize = 5;
/// An entry file larger than this is refused unread.
pub const MAX_ENTRY_BYTES: u64 = 64 * 1024;
/// A list with more files than this is refused whole (nothing is added or removed).
pub const MAX_LIST_FILES: usize = 100_000;
/// Deepest YAML nesting of an entry file (a URL list is two levels deep).
pub const MAX_YAML_DEPTH: usize = 16;
/// Most YAML nodes (scalars, lists, maps) in an entry file.
pub const MAX_YAML_NODES: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub url: String,
}

/// What the list repository's HEAD holds.
#[derive(Debug, Default)]
pub struct Listing {
    pub commit: String,
    pub entries: Vec<Entry>,
    /// Files that are no entry (no `url:`, not YAML): not an error.
    pub skipped: Vec<String>,
    /// Files refused as hostile or broken, as "name: why" (the name escaped).
    pub refused: Vec<String>,
}

/// Reads the entries of the list repository's HEAD tree.
pub fn read_entries(repo_dir: &Path) -> Result<Listing, String> {
    let repo = git2::Repository::open_bare(repo_dir).map_err(|e| e.message().to_string())?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| format!("the list repository has no commit on HEAD: {}", e.message()))?;
    let tree = head.tree().map_err(|e| e.message().to_string())?;
    let odb = repo.odb().map_err(|e| e.message().to_string())?;
    let mut out = Listing {
        commit: head.id().to_string(),
        ..Listing::default()
    };
    let mut files = 0usize;
    let mut walk_err = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        let raw = String::from_utf8_lossy(e.name_bytes());
        if raw.starts_with('.') {
            return git2::TreeWalkResult::Skip;
        }
        if e.kind() != Some(git2::ObjectType::Blob) || raw == "DEFAULTS" {
            return git2::TreeWalkResult::Ok;
        }
        files += 1;
        if files > MAX_LIST_FILES {
            walk_err = Some(format!(
                "the list holds more than {MAX_LIST_FILES} files; refusing it"
            ));
            return git2::TreeWalkResult::Abort;
        }
        let path = format!("{dir}{raw}");
        let shown = gitflock_core::task::printable_name(&path);
        let Ok(name) = e.name() else {
            out.refused
                .push(format!("{shown}: the file name is not UTF-8"));
            return git2::TreeWalkResult::Ok;
        };
        let path = format!("{dir}{name}");
        if let Err(why) = gitflock_core::task::check_text("the file name", &path, 1024, false) {
            out.refused.push(format!("{shown}: {why}"));
            return git2::TreeWalkResult::Ok;
        }
        // The size first: a huge blob is never read into memory.
        match odb.read_header(e.id()) {
            Ok((size, _)) if size as u64 > MAX_ENTRY_BYTES => {
                out.refused.push(format!(
                    "{shown}: {size} bytes; an entry file holds at most {} KiB",
                    MAX_ENTRY_BYTES / 1024
                ));
                return git2::TreeWalkResult::Ok;
            }
            Ok(_) => {}
            Err(err) => {
                walk_err = Some(err.message().to_string());
                return git2::TreeWalkResult::Abort;
            }
        }
        match e.to_object(&repo).and_then(|o| o.peel_to_blob()) {
            Ok(blob) => match first_url(blob.content()) {
                Ok(Some(url)) => out.entries.push(Entry { name: path, url }),
                Ok(None) => out.skipped.push(path),
                Err(why) => out.refused.push(format!("{shown}: {why}")),
            },
            Err(err) => {
                walk_err = Some(err.message().to_string());
                return git2::TreeWalkResult::Abort;
            }
        }
        git2::TreeWalkResult::Ok
    })
    .ok();
    if let Some(e) = walk_err {
        return Err(e);
    }
    Ok(out)
}

/// The first `url:` of a YAML document: a list's first string, or a plain string. None: not
/// an entry (not text, not YAML, no `url:`); an error: YAML refused before it is loaded.
pub fn first_url(content: &[u8]) -> Result<Option<String>, String> {
    if content.len() as u64 > MAX_ENTRY_BYTES {
        return Err(format!(
            "{} bytes; an entry file holds at most {} KiB",
            content.len(),
            MAX_ENTRY_BYTES / 1024
        ));
    }
    let Ok(text) = std::str::from_utf8(content) else {
        return Ok(None);
    };
    if !check_yaml(text)? {
        return Ok(None);
    }
    let Ok(docs) = yaml_rust2::YamlLoader::load_from_str(text) else {
        return Ok(None);
    };
    let Some(doc) = docs.first() else {
        return Ok(None);
    };
    let s = match &doc["url"] {
        yaml_rust2::Yaml::String(s) => s.clone(),
        yaml_rust2::Yaml::Array(a) => match a.first().and_then(|u| u.as_str()) {
            Some(u) => u.to_string(),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let s = s.trim().to_string();
    Ok((!s.is_empty()).then_some(s))
}

/// Reads the YAML's events without building anything: refuses aliases (the loader copies the
/// anchored node at each one, so nested aliases grow exponentially), deep nesting (dropping a
/// deep tree recurses) and too many nodes. Ok(false): not YAML at all.
fn check_yaml(text: &str) -> Result<bool, String> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut nodes) = (0usize, 0usize);
    loop {
        let Ok((event, _)) = parser.next_token() else {
            return Ok(false);
        };
        match event {
            Event::StreamEnd => return Ok(true),
            Event::Alias(_) => return Err("YAML aliases (*name) are refused".into()),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                nodes += 1;
                if depth > MAX_YAML_DEPTH {
                    return Err(format!("YAML nested over {MAX_YAML_DEPTH} levels deep"));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::Scalar(..) => nodes += 1,
            _ => {}
        }
        if nodes > MAX_YAML_NODES {
            return Err(format!("YAML of more than {MAX_YAML_NODES} nodes"));
        }
    }
}

/// What one sync should do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// task id → entry
    pub add: BTreeMap<String, Entry>,
    pub remove: Vec<String>,
    /// Why removals were held back (the mass-removal guard).
    pub refused: Option<String>,
    /// Entries whose URL is refused, with why.
    pub bad: Vec<String>,
}

pub fn plan(
    entries: &[Entry],
    listed: &HashSet<String>,
    existing: &HashSet<String>,
    allow_file: bool,
    max_remove_percent: u32,
) -> Plan {
    let mut p = Plan::default();
    let mut wanted: HashSet<String> = HashSet::new();
    for e in entries {
        match MirrorUrl::parse(&e.url, allow_file) {
            Ok(m) => {
                let id = m.task_id();
                if wanted.insert(id.clone()) && !existing.contains(&id) {
                    p.add.insert(id, e.clone());
                }
            }
            Err(why) => p.bad.push(format!("{}: {why}", e.name)),
        }
    }
    let mut remove: Vec<String> = listed.difference(&wanted).cloned().collect();
    remove.sort();
    if remove.is_empty() {
        return p;
    }
    let limit = (listed.len() * max_remove_percent as usize / 100).max(REMOVE_FLOOR);
    if wanted.is_empty() {
        p.refused = Some(format!(
            "the list has no usable entry; refusing to remove all {} listed mirrors",
            listed.len()
        ));
    } else if remove.len() > limit {
        p.refused = Some(format!(
            "refusing to remove {} of {} listed mirrors at once (limit {limit}: {max_remove_percent}% or {REMOVE_FLOOR}); \
             fix the list or raise [mirror] list_max_remove_percent",
            remove.len(),
            listed.len()
        ));
    } else {
        p.remove = remove;
    }
    p
}

pub struct ListSync {
    pub store: Store,
    pub lease: Arc<Lease>,
    pub url: String,
    pub repo_dir: std::path::PathBuf,
    pub refresh: Duration,
    pub interval_secs: u64,
    pub allow_file: bool,
    pub max_remove_percent: u32,
}

impl ListSync {
    /// While this node is master: sync the list every `refresh`.
    pub async fn run(self, stop: CancellationToken) {
        let mut changes = self.lease.subscribe();
        loop {
            if self.lease.current().is_some() {
                if let Err(e) = self.sync_once(&stop).await {
                    tracing::warn!(error = %gitflock_core::redact::redact(&e), "upstream list sync failed");
                    let _ = self
                        .store
                        .record_list_error(&gitflock_core::redact::redact(&e))
                        .await;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.refresh) => {}
                }
            } else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = changes.changed() => {}
                }
            }
        }
    }

    pub async fn sync_once(&self, stop: &CancellationToken) -> Result<(), String> {
        let (dir, url, cancel) = (self.repo_dir.clone(), self.url.clone(), stop.child_token());
        let listing = tokio::task::spawn_blocking(move || {
            let host = MirrorUrl::parse(&url, true)
                .map(|m| m.host)
                .unwrap_or_default();
            super::fetch::sync(&dir, &url, &host, 4, &cancel)?;
            read_entries(&dir)
        })
        .await
        .map_err(|e| e.to_string())??;
        let Listing {
            commit,
            entries,
            skipped,
            refused,
        } = listing;
        let listed = self.store.listed().await.map_err(|e| e.to_string())?;
        let existing = self
            .store
            .existing(
                &listed
                    .iter()
                    .cloned()
                    .chain(entries.iter().filter_map(|e| {
                        MirrorUrl::parse(&e.url, self.allow_file)
                            .ok()
                            .map(|m| m.task_id())
                    }))
                    .collect::<Vec<_>>(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut p = plan(
            &entries,
            &listed,
            &existing,
            self.allow_file,
            self.max_remove_percent,
        );
        // Refused files count as entries the list has but cannot use.
        p.bad.splice(0..0, refused);
        for (id, e) in &p.add {
            let m = MirrorUrl::parse(&e.url, self.allow_file)?;
            let t = NewTask {
                id: id.clone(),
                name: gitflock_core::task::shorten(
                    &format!("list:{}", e.name),
                    gitflock_core::task::MAX_NAME_BYTES,
                )
                .to_string(),
                kind: "mirror".into(),
                target: e.url.clone(),
                interval_secs: self.interval_secs,
                max_attempts: 3,
                timeout_secs: 3600,
                request_id: String::new(),
                placement: Placement::Ring(m.place()),
            };
            self.store.create(&t).await.map_err(|e| e.to_string())?;
        }
        // Tasks that exist (made by `mirror add` or an earlier sync) and are listed now.
        let adopt: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                MirrorUrl::parse(&e.url, self.allow_file)
                    .ok()
                    .map(|m| m.task_id())
            })
            .filter(|id| !listed.contains(id))
            .collect();
        self.store
            .add_listed(&adopt)
            .await
            .map_err(|e| e.to_string())?;
        if !p.remove.is_empty() {
            for id in &p.remove {
                self.store.delete(id).await.map_err(|e| e.to_string())?;
            }
            self.store
                .remove_listed(&p.remove)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut err = p.refused.clone().unwrap_or_default();
        if !p.bad.is_empty() {
            if !err.is_empty() {
                err.push_str("; ");
            }
            err.push_str(&format!(
                "{} entries refused: {}",
                p.bad.len(),
                p.bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        tracing::info!(
            commit = %commit, entries = entries.len(), added = p.add.len(), removed = p.remove.len(),
            skipped = skipped.len(), refused = p.refused.is_some(), "upstream list synced"
        );
        self.store
            .record_list_sync(&ListStatus {
                url: gitflock_core::redact::redact(&self.url),
                commit,
                entries: entries.len() as u32,
                last_sync: gitflock_core::clock::now_ms(),
                last_error: gitflock_core::redact::redact(&err),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                name: format!("r/r{i}"),
                url: format!("https://h/r{i}"),
            })
            .collect()
    }

    #[test]
    fn yaml_urls_are_read_like_compass_ci() {
        let url = |b: &[u8]| first_url(b).unwrap();
        assert_eq!(
            url(b"---\nurl:\n- https://a/x\n- https://b/x\n").as_deref(),
            Some("https://a/x")
        );
        assert_eq!(url(b"url: git://a/y\n").as_deref(), Some("git://a/y"));
        assert_eq!(url(b"fetch_tags: true\n"), None);
        assert_eq!(url(b"\x00\xff"), None);
        assert_eq!(url(b"url: [\n"), None);
    }

    #[test]
    fn alias_bombs_deep_nesting_and_huge_files_are_refused_unloaded() {
        // Nine levels of nine aliases each: 9^9 nodes once expanded, from a few hundred bytes.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        bomb.push_str("url: *a8\n");
        assert!(bomb.len() < 1024);
        let t0 = std::time::Instant::now();
        let e = first_url(bomb.as_bytes()).unwrap_err();
        assert!(e.contains("aliases"), "{e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        let deep = format!("url: {}x{}\n", "[".repeat(40), "]".repeat(40));
        assert!(first_url(deep.as_bytes()).unwrap_err().contains("nested"));
        let many = format!("url: [{}]\n", vec!["u"; MAX_YAML_NODES].join(", "));
        assert!(first_url(many.as_bytes()).unwrap_err().contains("nodes"));
        let huge = vec![b'#'; MAX_ENTRY_BYTES as usize + 1];
        assert!(first_url(&huge).unwrap_err().contains("at most 64 KiB"));
    }

    #[test]
    fn removals_are_guarded() {
        let all = entries(20);
        let ids: HashSet<String> = all
            .iter()
            .map(|e| MirrorUrl::parse(&e.url, false).unwrap().task_id())
            .collect();
        let p = plan(&all, &HashSet::new(), &HashSet::new(), false, 20);
        assert_eq!(p.add.len(), 20);
        // 3 of 20 removed: allowed (under the floor).
        let p = plan(&all[3..], &ids, &ids, false, 20);
        assert_eq!(
            (p.add.len(), p.remove.len(), p.refused.is_none()),
            (0, 3, true)
        );
        // 12 of 20: refused, nothing removed.
        let p = plan(&all[12..], &ids, &ids, false, 20);
        assert!(p.remove.is_empty() && p.refused.is_some(), "{p:?}");
        // An empty list removes nothing.
        let p = plan(&[], &ids, &ids, false, 100);
        assert!(p.remove.is_empty() && p.refused.is_some());
        // A bad URL is reported, not fatal.
        let mut with_bad = all.clone();
        with_bad.push(Entry {
            name: "evil".into(),
            url: "ext::sh -c x".into(),
        });
        let p = plan(&with_bad, &ids, &ids, false, 20);
        assert_eq!(p.bad.len(), 1);
    }
}
