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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub url: String,
}

/// Reads the entries of the list repository's HEAD tree. Files that are not entries (no
/// `url:`, not YAML) are counted in `skipped`, not fatal.
pub fn read_entries(repo_dir: &Path) -> Result<(String, Vec<Entry>, Vec<String>), String> {
    let repo = git2::Repository::open_bare(repo_dir).map_err(|e| e.message().to_string())?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| format!("the list repository has no commit on HEAD: {}", e.message()))?;
    let tree = head.tree().map_err(|e| e.message().to_string())?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut walk_err = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        let Ok(name) = e.name() else {
            return git2::TreeWalkResult::Skip;
        };
        if name.starts_with('.') {
            return git2::TreeWalkResult::Skip;
        }
        if e.kind() != Some(git2::ObjectType::Blob) || name == "DEFAULTS" {
            return git2::TreeWalkResult::Ok;
        }
        let path = format!("{dir}{name}");
        match e.to_object(&repo).and_then(|o| o.peel_to_blob()) {
            Ok(blob) => match first_url(blob.content()) {
                Some(url) => entries.push(Entry { name: path, url }),
                None => skipped.push(path),
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
    Ok((head.id().to_string(), entries, skipped))
}

/// The first `url:` of a YAML document: a list's first string, or a plain string.
pub fn first_url(content: &[u8]) -> Option<String> {
    if content.len() > 64 * 1024 {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).ok()?;
    let url = &docs.first()?["url"];
    let s = match url {
        yaml_rust2::Yaml::String(s) => s.clone(),
        yaml_rust2::Yaml::Array(a) => a.first()?.as_str()?.to_string(),
        _ => return None,
    };
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
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
        let (commit, entries, skipped) = tokio::task::spawn_blocking(move || {
            let host = MirrorUrl::parse(&url, true)
                .map(|m| m.host)
                .unwrap_or_default();
            super::fetch::sync(&dir, &url, &host, 4, &cancel)?;
            read_entries(&dir)
        })
        .await
        .map_err(|e| e.to_string())??;
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
        let p = plan(
            &entries,
            &listed,
            &existing,
            self.allow_file,
            self.max_remove_percent,
        );
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
        assert_eq!(
            first_url(b"---\nurl:\n- https://a/x\n- https://b/x\n").as_deref(),
            Some("https://a/x")
        );
        assert_eq!(first_url(b"url: git://a/y\n").as_deref(), Some("git://a/y"));
        assert_eq!(first_url(b"fetch_tags: true\n"), None);
        assert_eq!(first_url(b"\x00\xff"), None);
        assert_eq!(first_url(b"url: [\n"), None);
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
