//! Where the workspace's binaries are, for tests and benchmarks: next to the running test
//! executable (`target/<profile>/`), built first when older than their sources.
//!
//! A workspace run (`cargo nextest run --workspace`) has just built every binary, and nothing
//! is rebuilt. `cargo nextest run -p gitflock-web` builds only that crate's binaries, and a
//! stale node would test yesterday's cluster: then the binary is built here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// `target/debug` (or whichever profile built the running executable).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    // Test executables live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The newest modification time of the files under `path`.
fn newest(path: &Path) -> SystemTime {
    let Ok(meta) = std::fs::metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    let own = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !meta.is_dir() || path.ends_with("target") || path.ends_with(".git") {
        return own;
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| newest(&e.path()))
        .fold(own, std::cmp::max)
}

/// The package that builds a binary, and the source folders of its own (besides the shared
/// crates every binary is made from).
fn package_of(name: &str) -> (&'static str, &'static [&'static str]) {
    match name {
        "gitflock-node" => ("gitflock-rpc", &["rpc/src", "rpc/Cargo.toml"]),
        "gitflock" => ("gitflock-cli", &["rpc/cli", "harness"]),
        "gitflock-web" => ("gitflock-web", &["web/src", "templates", "static"]),
        "gitflock-bench" => ("gitflock-bench", &["bench/driver", "harness"]),
        other => panic!("unknown binary {other}"),
    }
}

/// The workspace root (this crate's parent folder).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Test-only: the path of workspace binary `name` (`gitflock-node`, `gitflock`,
/// `gitflock-web`), built first if it is missing or older than its sources. Panics if it can be
/// neither found nor built. (`gitflock dev` finds installed programs with [`crate::installed`].)
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let bin = bin_dir().join(name);
    let (package, own) = package_of(name);
    let top = workspace();
    let sources = own
        .iter()
        .chain(["proto", "core", "client", "Cargo.lock", "Cargo.toml"].iter())
        .map(|p| newest(&top.join(p)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let fresh = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= sources);
    if !fresh {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", package, "--bin", name])
            .current_dir(&top);
        if bin_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        assert!(
            ok || bin.is_file(),
            "cannot build {name} and {} does not exist: run `cargo build -p {package}` first",
            bin.display()
        );
    }
    built.push((name.to_string(), bin.clone()));
    bin
}
