//! Mirrors against real upstream repositories served by `git daemon` on loopback: changes
//! followed, errors and recovery, placement as nodes die and join, the upstream list, the
//! webhook, hostile URLs, kills, and `git clone` from the cluster.
//!
//! One test binary; the scenarios are in the submodules, the upstreams and mirror helpers
//! they share are here.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/fake_http.rs"]
mod fake_http;
mod faults;
mod hostile;
mod list;
mod moved;
mod placement;
mod safety;
mod sync;
mod webhook;

use common::*;
use gitflock_proto::v1::{CreateTaskRequest, ListMirrorsRequest, Mirror};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Refs of a remote as `git ls-remote` sees them (HEAD and peeled tags left out).
fn ls_remote(url: &str) -> BTreeMap<String, String> {
    let out = Command::new("git")
        .args(["ls-remote", url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ls-remote {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, r)| *r != "HEAD" && !r.ends_with("^{}"))
        .map(|(o, r)| (r.to_string(), o.to_string()))
        .collect()
}

/// Bare upstream repositories under one directory, served by `git daemon` on a free port.
struct Upstream {
    dir: tempfile::TempDir,
    port: u16,
    daemon: Option<Child>,
}

impl Upstream {
    fn start() -> Upstream {
        let mut u = Upstream {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            daemon: None,
        };
        std::fs::create_dir_all(u.dir.path().join("up")).unwrap();
        u.serve();
        u
    }

    fn serve(&mut self) {
        let base = self.dir.path().join("up");
        // `git-daemon` itself (not the `git` wrapper, whose child would outlive a kill).
        let exec_path = git(self.dir.path(), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops serving (the port refuses connections).
    fn stop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }

    fn bare(&self, name: &str) -> PathBuf {
        self.dir.path().join("up").join(format!("{name}.git"))
    }

    fn work(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    /// A new upstream `name` with a first commit on main; returns its work tree.
    fn create(&self, name: &str) -> PathBuf {
        let bare = self.bare(name);
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(
            self.dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        let work = self.work(name);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        work
    }

    /// A new commit on `branch` of `name`, pushed; returns its id.
    fn commit(&self, name: &str, branch: &str, msg: &str) -> String {
        let work = self.work(name);
        git(&work, &["checkout", "-q", "-B", branch]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(
            &work,
            &[
                "push",
                "-q",
                "-f",
                self.bare(name).to_str().unwrap(),
                branch,
            ],
        );
        git(&work, &["rev-parse", "HEAD"])
    }

    fn push(&self, name: &str, refspecs: &[&str]) {
        let bare = self.bare(name);
        let mut args = vec!["push", "-q", "-f", bare.to_str().unwrap()];
        args.extend_from_slice(refspecs);
        git(&self.work(name), &args);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn add_mirror(c: &mut gitflock_client::Client, url: &str, interval: u64) -> String {
    c.tasks
        .create_task(CreateTaskRequest {
            r#type: "mirror".into(),
            target: url.into(),
            interval_secs: interval,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn mirrors(c: &gitflock_client::Client) -> Vec<Mirror> {
    let mut c = c.clone();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .mirrors
            .list_mirrors(ListMirrorsRequest {
                text: String::new(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.mirrors);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn mirror(c: &gitflock_client::Client, task_id: &str) -> Mirror {
    mirrors(c)
        .await
        .into_iter()
        .find(|m| m.task_id == task_id)
        .expect("the mirror is listed")
}

/// Waits until the mirror's status satisfies `f`.
async fn wait_mirror(
    c: &gitflock_client::Client,
    id: &str,
    what: &str,
    timeout: Duration,
    f: impl Fn(&Mirror) -> bool,
) -> Mirror {
    wait_for(what, timeout, || async {
        let m = mirror(c, id).await;
        f(&m).then_some(m)
    })
    .await
}
