//! Mirrors' records: what a mirror task's runs found ([`MirrorStatus`], written run by run
//! through [`MirrorRun`] and MIRROR_REPORT), and the upstream list's bookkeeping (the ids it
//! made, its last sync as [`ListStatus`]).

use redis::{AsyncCommands, Value};
use std::collections::{HashMap, HashSet};

use super::reply::{Fields, Items, malformed};
use super::{Result, Store};

/// The fields of a mirror status hash (`P:mirror:<id>`), named here once. MIRROR_REPORT keeps
/// `failures` itself and reads `moved` back.
mod field {
    pub const NODE: &str = "node";
    pub const PATH: &str = "path";
    pub const CLONE_URL: &str = "clone_url";
    pub const HEAD: &str = "head";
    pub const REFS: &str = "refs";
    pub const LAST_FETCH: &str = "last_fetch";
    pub const LAST_CHANGE: &str = "last_change";
    pub const MOVED: &str = "moved";
    pub const LAST_ERROR: &str = "last_error";
    pub const LAST_FAIL: &str = "last_fail";
    pub const FAILURES: &str = "failures";
}

/// What a mirror task's runs found (a mirror that never ran has the default: all empty).
/// Times are the recording node's clock, in ms (0: never).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorStatus {
    /// The node that holds the freshest copy.
    pub node: String,
    /// The bare repository on that node, under its mirrors directory.
    pub path: String,
    /// Where `git daemon` serves it ('' while not served).
    pub clone_url: String,
    /// The upstream's default branch and its commit ("main 1a2b3c…").
    pub head: String,
    pub refs: u32,
    /// The last run that reached the upstream.
    pub last_fetch: i64,
    /// The last run that changed a ref (a first clone included).
    pub last_change: i64,
    /// The last run that saw the upstream move (a first clone not counted).
    pub moved: i64,
    /// '' when the last run succeeded.
    pub last_error: String,
    pub last_fail: i64,
    /// Consecutive failed runs.
    pub failures: u32,
}

impl MirrorStatus {
    fn from_fields(map: &HashMap<String, String>) -> Result<MirrorStatus> {
        let f = Fields::of("mirror status", map);
        Ok(MirrorStatus {
            node: f.text(field::NODE),
            path: f.text(field::PATH),
            clone_url: f.text(field::CLONE_URL),
            head: f.text(field::HEAD),
            refs: f.number(field::REFS)?,
            last_fetch: f.number(field::LAST_FETCH)?,
            last_change: f.number(field::LAST_CHANGE)?,
            moved: f.number(field::MOVED)?,
            last_error: f.text(field::LAST_ERROR),
            last_fail: f.number(field::LAST_FAIL)?,
            failures: f.number(field::FAILURES)?,
        })
    }
}

/// One mirror run's findings, as they update the task's [`MirrorStatus`].
#[derive(Clone, Debug)]
pub enum MirrorRun {
    /// The mirror matches the upstream: where it is, what it holds; the error is cleared and
    /// the failures reset.
    Synced {
        node: String,
        path: String,
        head: String,
        refs: u32,
        /// When the run ended (ms).
        at: i64,
        /// Where it is served; None: not served (a URL recorded before stays).
        clone_url: Option<String>,
        /// A ref changed (a first clone included): `last_change` is `at`.
        changed: bool,
        /// The upstream moved since the last run (a first clone not counted): `moved` is `at`.
        moved: bool,
    },
    /// The run failed: the error and when; one more failure; the rest stays as it was.
    Failed { error: String, at: i64 },
}

impl MirrorRun {
    /// ok (1|0) and the field/value pairs MIRROR_REPORT sets.
    fn fields(&self) -> (u8, Vec<(&'static str, String)>) {
        match self {
            MirrorRun::Synced {
                node,
                path,
                head,
                refs,
                at,
                clone_url,
                changed,
                moved,
            } => {
                let mut f = vec![
                    (field::NODE, node.clone()),
                    (field::PATH, path.clone()),
                    (field::HEAD, head.clone()),
                    (field::REFS, refs.to_string()),
                    (field::LAST_FETCH, at.to_string()),
                    (field::LAST_ERROR, String::new()),
                ];
                if let Some(u) = clone_url {
                    f.push((field::CLONE_URL, u.clone()));
                }
                if *changed {
                    f.push((field::LAST_CHANGE, at.to_string()));
                }
                if *moved {
                    f.push((field::MOVED, at.to_string()));
                }
                (1, f)
            }
            MirrorRun::Failed { error, at } => (
                0,
                vec![
                    (field::LAST_ERROR, error.clone()),
                    (field::LAST_FAIL, at.to_string()),
                ],
            ),
        }
    }
}

/// What MIRROR_REPORT recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorReported {
    /// Consecutive failed runs, this one included.
    pub failures: u32,
    /// The last run that saw the upstream move (ms; 0: never since the clone).
    pub moved: i64,
}

/// The upstream list's last sync (`P:list`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListStatus {
    /// The list's URL, credentials masked.
    pub url: String,
    /// The list repository's commit that was read.
    pub commit: String,
    pub entries: u32,
    /// When it was read (ms).
    pub last_sync: i64,
    /// What went wrong or was refused ('' when nothing).
    pub last_error: String,
}

mod list_field {
    pub const URL: &str = "url";
    pub const COMMIT: &str = "commit";
    pub const ENTRIES: &str = "entries";
    pub const LAST_SYNC: &str = "last_sync";
    pub const LAST_ERROR: &str = "last_error";
}

impl Store {
    /// Records the findings of the run `claim` of mirror `id` on `node`; None when that run is
    /// not the task's current one (the task is gone, or was given to another node or claimed
    /// again since): nothing is recorded.
    pub async fn mirror_report(
        &self,
        id: &str,
        node: &str,
        claim: u64,
        run: &MirrorRun,
    ) -> Result<Option<MirrorReported>> {
        let (ok, fields) = run.fields();
        let mut c = self.conn.clone();
        let mut inv = self.scripts.mirror_report.prepare_invoke();
        inv.key(self.keys.task(id))
            .key(self.keys.mirror(id))
            .arg(node)
            .arg(claim)
            .arg(ok);
        for (k, v) in &fields {
            inv.arg(*k).arg(v);
        }
        let v: Value = inv.invoke_async(&mut c).await?;
        let mut r = Items::of("MIRROR_REPORT", v)?;
        match (r.left(), r.int("recorded")?) {
            (1, 0) => Ok(None),
            (3, 1) => Ok(Some(MirrorReported {
                failures: u32::try_from(r.int("failures")?)
                    .map_err(|_| malformed("MIRROR_REPORT failures: out of range"))?,
                moved: r.int("moved")?,
            })),
            _ => Err(malformed(
                "MIRROR_REPORT: expected {0} or {1, failures, moved}",
            )),
        }
    }

    /// Mirror statuses per task id (the default for a mirror that never ran), in one round
    /// trip.
    pub async fn mirror_statuses(&self, ids: &[String]) -> Result<Vec<MirrorStatus>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.mirror(id));
        }
        let mut c = self.conn.clone();
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        maps.iter().map(MirrorStatus::from_fields).collect()
    }

    // ---- the upstream list ----

    /// Ids of the mirror tasks the upstream list made.
    pub async fn listed(&self) -> Result<HashSet<String>> {
        let mut c = self.conn.clone();
        Ok(c.smembers(self.keys.listed()).await?)
    }

    pub async fn add_listed(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c.sadd(self.keys.listed(), ids).await?;
        Ok(())
    }

    pub async fn remove_listed(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c.srem(self.keys.listed(), ids).await?;
        Ok(())
    }

    /// Which of these task ids exist.
    pub async fn existing(&self, ids: &[String]) -> Result<HashSet<String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(self.keys.task(id));
        }
        let mut c = self.conn.clone();
        let there: Vec<bool> = pipe.query_async(&mut c).await?;
        Ok(ids
            .iter()
            .zip(there)
            .filter(|(_, t)| *t)
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// Records a sync of the list that went through (its error: what it refused, or '').
    pub async fn record_list_sync(&self, s: &ListStatus) -> Result<()> {
        let mut c = self.conn.clone();
        let fields = [
            (list_field::URL, s.url.clone()),
            (list_field::COMMIT, s.commit.clone()),
            (list_field::ENTRIES, s.entries.to_string()),
            (list_field::LAST_SYNC, s.last_sync.to_string()),
            (list_field::LAST_ERROR, s.last_error.clone()),
        ];
        let _: () = c.hset_multiple(self.keys.list(), &fields).await?;
        Ok(())
    }

    /// Records a sync of the list that failed; the last good sync's record stays.
    pub async fn record_list_error(&self, error: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c
            .hset_multiple(self.keys.list(), &[(list_field::LAST_ERROR, error)])
            .await?;
        Ok(())
    }

    pub async fn list_status(&self) -> Result<ListStatus> {
        let mut c = self.conn.clone();
        let map: HashMap<String, String> = c.hgetall(self.keys.list()).await?;
        let f = Fields::of("list status", &map);
        Ok(ListStatus {
            url: f.text(list_field::URL),
            commit: f.text(list_field::COMMIT),
            entries: f.number(list_field::ENTRIES)?,
            last_sync: f.number(list_field::LAST_SYNC)?,
            last_error: f.text(list_field::LAST_ERROR),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_back_as_the_status_it_wrote() {
        let run = MirrorRun::Synced {
            node: "n1".into(),
            path: "h/r.git".into(),
            head: "main 1a2b".into(),
            refs: 3,
            at: 5,
            clone_url: Some("git://x/h/r.git".into()),
            changed: true,
            moved: false,
        };
        let (ok, fields) = run.fields();
        assert_eq!(ok, 1);
        let mut map: HashMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        map.insert(field::FAILURES.into(), "0".into());
        let s = MirrorStatus::from_fields(&map).unwrap();
        assert_eq!(
            s,
            MirrorStatus {
                node: "n1".into(),
                path: "h/r.git".into(),
                clone_url: "git://x/h/r.git".into(),
                head: "main 1a2b".into(),
                refs: 3,
                last_fetch: 5,
                last_change: 5,
                ..Default::default()
            }
        );
        let (ok, fields) = MirrorRun::Failed {
            error: "e".into(),
            at: 9,
        }
        .fields();
        assert_eq!(ok, 0);
        assert_eq!(fields.len(), 2);
    }
}
