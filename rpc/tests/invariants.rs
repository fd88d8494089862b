//! ARCHITECTURE.md's invariants that a reading of the source can check, checked.
//!
//! Each test reads the workspace (its files, or `cargo metadata`) and fails naming the file
//! and line that breaks the rule, so a change that drifts from the architecture fails here
//! rather than in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") && !p.ends_with(".git") {
                out.extend(rust_files(&p));
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The source folders of the workspace's crates (production code, not tests).
const SOURCES: [&str; 7] = [
    "core/src",
    "client/src",
    "harness/src",
    "rpc/src",
    "rpc/cli/src",
    "web/src",
    "bench/driver/src",
];

/// A file's text without its `#[cfg(test)] mod tests { … }` tail (unit tests may do what
/// production code may not, e.g. build a fixture by hand).
fn production_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn rel(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// True when `code` uses the `redis` crate: a path that starts with `redis::` (not
/// `crate::redis::…`, a module of that name) or a `use redis`.
fn names_redis_client(code: &str) -> bool {
    let mut rest = code;
    while let Some(i) = rest.find("redis::") {
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return true;
        }
        rest = &rest[i + 1..];
    }
    code.trim_start().starts_with("use redis")
}

/// True when `code` spells a Redis key by hand: the default prefix followed by a key name, or
/// a prefix variable followed by `:`.
fn spells_a_key(code: &str) -> bool {
    code.match_indices("\"gitflock:")
        .any(|(i, m)| code[i + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        || code.contains("prefix}:")
        || code.contains("PREFIX}:")
}

/// Invariant 1: only `rpc/src/store` names the Redis client, and nobody else spells a key.
#[test]
fn only_the_store_talks_to_redis_and_builds_keys() {
    let top = workspace();
    let store = top.join("rpc/src/store");
    let mut offences = Vec::new();
    for dir in SOURCES {
        for f in rust_files(&top.join(dir)) {
            if f.starts_with(&store) {
                continue;
            }
            for (n, line) in production_text(&f).lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if names_redis_client(code) {
                    offences.push(format!("{}:{}: names the Redis client", rel(&f), n + 1));
                }
                if spells_a_key(code) {
                    offences.push(format!("{}:{}: builds a Redis key", rel(&f), n + 1));
                }
            }
        }
    }
    // Tests may read Redis to check what the store wrote, but through `Keys`.
    for dir in ["rpc/tests", "web/tests"] {
        for f in rust_files(&top.join(dir)) {
            if f.ends_with("invariants.rs") {
                continue;
            }
            for (n, line) in std::fs::read_to_string(&f)
                .unwrap_or_default()
                .lines()
                .enumerate()
            {
                if spells_a_key(line.split("//").next().unwrap_or("")) {
                    offences.push(format!("{}:{}: builds a Redis key", rel(&f), n + 1));
                }
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

/// The crates that must link neither libgit2 nor the Redis client.
const LIGHT: [&str; 6] = [
    "gitflock-core",
    "gitflock-client",
    "gitflock-harness",
    "gitflock-cli",
    "gitflock-web",
    "gitflock-bench",
];
const HEAVY: [&str; 4] = ["git2", "libgit2-sys", "redis", "yaml-rust2"];

/// The dashboard, the CLI and the crates below them link neither git2 nor redis: what
/// `cargo tree -p gitflock-web` shows, for each of them.
#[test]
fn the_dashboard_cli_and_shared_crates_link_neither_git_nor_redis() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for krate in LIGHT {
        let out = std::process::Command::new(&cargo)
            .args([
                "tree", "-q", "--locked", "-e", "normal", "--prefix", "none", "-p", krate,
            ])
            .current_dir(workspace())
            .output()
            .expect("cargo tree");
        assert!(
            out.status.success(),
            "cargo tree -p {krate}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        let linked: BTreeSet<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| HEAVY.contains(name))
            .collect();
        assert!(
            linked.is_empty(),
            "{krate} links {linked:?} (see `cargo tree -p {krate} -i {}`)",
            linked.iter().next().unwrap_or(&"")
        );
        assert!(
            tree.lines().count() > 1,
            "cargo tree -p {krate} listed nothing"
        );
    }
}

/// A module's path (`["mirror", "fetch"]`) from its file under a crate's `src`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The module paths named after `crate::` / `super::` in `text`, as written.
fn references(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (marker, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = text;
        while let Some(i) = rest.find(marker) {
            let before = rest[..i].chars().last();
            rest = &rest[i + marker.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = base.clone();
            let mut tail = rest;
            loop {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let seg = &tail[..end];
                if seg.is_empty() || !seg.starts_with(|c: char| c.is_ascii_lowercase()) {
                    break;
                }
                path.push(seg.to_string());
                match tail[end..].strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            out.push(path);
        }
    }
    out
}

/// A cycle in `edges`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// No import circles between modules: within each folder of each crate, the sibling modules
/// use each other in one direction only. (A module and its own submodules are one unit: a
/// parent re-exporting its child and the child using its parent's items is no circle.)
#[test]
fn modules_use_each_other_in_one_direction() {
    let top = workspace();
    let mut cycles = Vec::new();
    for dir in SOURCES {
        let src = top.join(dir);
        let files = rust_files(&src);
        let modules: BTreeSet<Vec<String>> = files
            .iter()
            .filter(|f| !f.starts_with(src.join("bin")))
            .map(|f| module_of(&src, f))
            .collect();
        // Edges between siblings, per parent folder.
        let mut scoped: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for f in &files {
            let from = module_of(&src, f);
            if !modules.contains(&from) {
                continue;
            }
            for mut to in references(&production_text(f), &from) {
                while !to.is_empty() && !modules.contains(&to) {
                    to.pop();
                }
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue;
                }
                scoped
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .insert(to[common].clone());
            }
        }
        for (parent, edges) in scoped {
            if let Some(c) = find_cycle(&edges) {
                cycles.push(format!("{dir}/{}: {}", parent.join("/"), c.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
}

/// No source file grows past ~600 lines (generated code is not in the tree).
#[test]
fn files_stay_short_enough_to_read() {
    const MAX_LINES: usize = 650;
    let top = workspace();
    let mut long = Vec::new();
    for dir in SOURCES
        .iter()
        .chain(&["rpc/tests", "web/tests", "proto/src"])
    {
        for f in rust_files(&top.join(dir)) {
            let n = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .lines()
                .count();
            if n > MAX_LINES {
                long.push(format!("{}: {n} lines", rel(&f)));
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// Invariant 10: secrets are compared in constant time, in one place (`core::secret`).
#[test]
fn secrets_are_compared_by_the_one_constant_time_compare() {
    let top = workspace();
    let mut offences = Vec::new();
    for dir in SOURCES {
        for f in rust_files(&top.join(dir)) {
            let text = production_text(&f);
            if text.contains("fold(0u8") || text.contains("a ^ b") {
                offences.push(rel(&f));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "hand-written constant-time compare in: {}",
        offences.join(", ")
    );
}

/// Invariant 2: every Lua script documents its `KEYS` and `ARGV`.
#[test]
fn every_lua_script_documents_its_keys_and_arguments() {
    let dir = workspace().join("rpc/src/store");
    let mut undocumented = Vec::new();
    let mut scripts = 0;
    for f in rust_files(&dir) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.contains("const ") && line.contains(": &str = r#\""))
                || line.contains("PRELUDE")
            {
                continue;
            }
            scripts += 1;
            let doc: String = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("///"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            if !(doc.contains("KEYS") && doc.contains("ARGV")) {
                undocumented.push(format!("{}:{}", rel(&f), i + 1));
            }
        }
    }
    assert!(
        scripts >= 10,
        "found only {scripts} Lua scripts under rpc/src/store"
    );
    assert!(
        undocumented.is_empty(),
        "scripts without KEYS/ARGV docs: {}",
        undocumented.join(", ")
    );
}
