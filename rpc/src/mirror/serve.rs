//! Serving the mirrors read-only with `git daemon` (the git protocol, `git://`).
//!
//! The node supervises one `git daemon` over `<data_dir>/mirrors`: upload-pack only (no
//! receive-pack, no archive), `--base-path` so clients name `<host>/<path>.git`, the mirrors
//! directory as the only whitelisted tree, connection and idle timeouts. If it exits it is
//! started again after a short pause; it is killed when the node stops — and, since the
//! `git-daemon` program is run directly (not through the `git` wrapper, which would leave it
//! behind as a grandchild) with a parent-death signal, also when the node is killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

/// `<git --exec-path>/git-daemon`, if it is there.
fn daemon_binary() -> Option<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let bin = PathBuf::from(dir.trim()).join("git-daemon");
    bin.is_file().then_some(bin)
}

pub async fn run(base: PathBuf, listen: SocketAddr, stop: CancellationToken) {
    let mut pause = Duration::from_millis(200);
    loop {
        if let Err(e) = std::fs::create_dir_all(&base) {
            tracing::error!(error = %e, dir = %base.display(), "cannot create the mirrors directory");
        }
        let mut cmd = match daemon_binary() {
            Some(bin) => tokio::process::Command::new(bin),
            None => {
                let mut c = tokio::process::Command::new("git");
                c.arg("daemon");
                c
            }
        };
        // SAFETY: prctl in the forked child before exec only sets its parent-death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .args([
                "--reuseaddr",
                "--export-all",
                "--init-timeout=10",
                "--timeout=300",
                "--max-connections=64",
            ])
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--listen={}", listen.ip()))
            .arg(format!("--port={}", listen.port()))
            .arg(&base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot start git daemon; mirrors are not served");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => continue,
                }
            }
        };
        tracing::info!(%listen, dir = %base.display(), "serving mirrors with git daemon");
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::debug!(target: "git_daemon", "{}", gitflock_core::redact::redact(&l));
                }
            });
        }
        let started = std::time::Instant::now();
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return;
            }
            status = child.wait() => {
                tracing::warn!(?status, "git daemon exited; starting it again");
            }
        }
        pause = if started.elapsed() > Duration::from_secs(30) {
            Duration::from_millis(200)
        } else {
            (pause * 2).min(Duration::from_secs(10))
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
