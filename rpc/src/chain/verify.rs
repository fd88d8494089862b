//! Verification: the chain is whole (each commit's only parent is the previous height, the
//! messages are in the seed's format, times never go back and match the commit times), it
//! still holds every block tip it recorded at that block's height, and the remote's branches
//! still contain those tips (nobody rewrote or force-moved them). The first bad place is
//! reported.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use super::{ChainError, Entry, OID_LEN, Tip, oid_at, repo_path};

/// A recorded block to check.
#[derive(Clone, Debug)]
pub struct BlockCheck {
    pub branch: String,
    pub tip: String,
    pub height: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    /// Entries checked (the tip's height).
    pub height: u64,
    pub blocks_checked: u64,
    /// The first bad height, if the chain itself is bad.
    pub bad_height: Option<u64>,
    pub bad_commit: String,
    pub problem: String,
}

fn bad(height: u64, commit: &str, problem: String, blocks: u64) -> Verdict {
    Verdict {
        ok: false,
        height,
        blocks_checked: blocks,
        bad_height: Some(height),
        bad_commit: commit.into(),
        problem,
    }
}

pub fn verify(
    dir: &Path,
    tip: &Tip,
    blocks: &[BlockCheck],
    remote: Option<&str>,
) -> Result<Verdict, ChainError> {
    let repo = git2::Repository::open_bare(repo_path(dir))?;
    let heights = File::open(dir.join("heights"))?;
    let indexed = heights.metadata()?.len() / OID_LEN as u64;
    // The chain as it is now: the branch, walked back to its root.
    let branch = repo.refname_to_id(super::BRANCH_REF)?;
    let mut walk = Vec::new();
    let mut cur = Some(branch);
    while let Some(oid) = cur {
        let Ok(c) = repo.find_commit(oid) else {
            return Ok(bad(
                walk.len() as u64,
                &oid.to_string(),
                "commit missing from the repository".into(),
                0,
            ));
        };
        let parents: Vec<git2::Oid> = c.parent_ids().collect();
        if parents.len() > 1 {
            return Ok(bad(
                0,
                &oid.to_string(),
                "a merge commit in the chain".into(),
                0,
            ));
        }
        walk.push(oid);
        cur = parents.first().copied();
    }
    walk.reverse();
    let top = walk.len() as u64 - 1;
    let mut position = HashMap::new();
    let mut prev_at = i64::MIN;
    for (h, oid) in walk.iter().enumerate() {
        let h = h as u64;
        let hex = oid.to_string();
        // What was acknowledged at this height must still be there.
        if h < indexed && oid_at(&heights, h)? != *oid {
            let problem = format!(
                "differs from the commit acknowledged at this height ({})",
                oid_at(&heights, h)?
            );
            return Ok(bad(h, &hex, problem, 0));
        }
        let c = repo.find_commit(*oid)?;
        let msg = String::from_utf8_lossy(c.message_bytes()).into_owned();
        if h == 0 {
            if !msg.starts_with("[genesis] ") {
                return Ok(bad(h, &hex, "the first commit is not a genesis".into(), 0));
            }
        } else {
            let Some(e) = Entry::parse(&msg) else {
                return Ok(bad(
                    h,
                    &hex,
                    "message is not `[level] content create_at`".into(),
                    0,
                ));
            };
            if e.create_at < prev_at {
                return Ok(bad(h, &hex, "create_at goes back in time".into(), 0));
            }
            if c.time().seconds() != e.create_at.div_euclid(1000)
                || c.author().when().seconds() != c.time().seconds()
            {
                return Ok(bad(h, &hex, "commit time differs from create_at".into(), 0));
            }
            prev_at = e.create_at;
        }
        position.insert(*oid, h);
    }
    if top + 1 < indexed.max(tip.height + 1) {
        let h = top + 1;
        return Ok(bad(
            h,
            "",
            format!(
                "the branch ends at height {top}; entries up to {} were acknowledged",
                indexed.max(tip.height + 1) - 1
            ),
            0,
        ));
    }
    let mut checked = 0;
    for b in blocks {
        let Ok(tip_oid) = git2::Oid::from_str(&b.tip) else {
            continue;
        };
        if position.get(&tip_oid) != Some(&b.height) {
            return Ok(Verdict {
                ok: false,
                height: top,
                blocks_checked: checked,
                bad_height: Some(b.height),
                bad_commit: b.tip.clone(),
                problem: format!(
                    "block {} tip is no longer at height {} of the chain",
                    b.branch, b.height
                ),
            });
        }
        if let Some(remote) = remote {
            let remote_tip = super::remote::ls_remote(remote, &b.branch)?;
            let contains = remote_tip
                .and_then(|r| git2::Oid::from_str(&r).ok())
                .and_then(|r| position.get(&r))
                .is_some_and(|&rh| rh >= b.height);
            if !contains {
                return Ok(Verdict {
                    ok: false,
                    height: top,
                    blocks_checked: checked,
                    bad_height: None,
                    bad_commit: b.tip.clone(),
                    problem: format!(
                        "remote branch {} no longer contains block tip {} (rewritten or force-moved)",
                        b.branch, b.tip
                    ),
                });
            }
        }
        checked += 1;
    }
    Ok(Verdict {
        ok: true,
        height: top,
        blocks_checked: checked,
        ..Default::default()
    })
}
