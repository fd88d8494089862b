//! One child process of the harness: started with its output in a log file, signalled,
//! reaped exactly once, and killed (SIGKILL) if it is still running when dropped.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::signal::{SIGKILL, SIGTERM, send_signal};

/// How often an exit is looked for.
const POLL: Duration = Duration::from_millis(20);

/// Environment variables `gitflock dev` never passes on from the user's shell: the cluster it
/// starts is configured by the harness alone.
const NOT_INHERITED: &[&str] = &["GITFLOCK_CONFIG"];

/// A command for `program` whose environment is either empty but for PATH (tests and
/// benchmarks: nothing of the caller's shell leaks in), or the caller's but for
/// [`NOT_INHERITED`] (`gitflock dev`, so that RUST_LOG and friends still apply).
pub(crate) fn command(program: &Path, inherit_env: bool) -> Command {
    let mut cmd = Command::new(program);
    if inherit_env {
        for k in NOT_INHERITED {
            cmd.env_remove(k);
        }
    } else {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    }
    cmd
}

pub(crate) struct Process {
    /// What messages call it (`node2`, `redis-server`, `gitflock-web`).
    name: String,
    child: Child,
    /// How it ended, once it was reaped (by a look, a wait or [`Process::kill9`]); from then
    /// on its pid is not signalled (it could be another process's by now).
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout/stderr to `log` (appended to when `append`,
    /// else truncated first), or discarded without a log.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        log: Option<&Path>,
        append: bool,
    ) -> Result<Process, String> {
        let (out, err) = match log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                let f2 = f.try_clone().map_err(|e| e.to_string())?;
                (Stdio::from(f), Stdio::from(f2))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{} not found", cmd.get_program().to_string_lossy())
                }
                _ => format!("cannot start {name}: {e}"),
            })?;
        Ok(Process {
            name: name.to_string(),
            child,
            status: None,
        })
    }

    /// The process id while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.status.is_none().then(|| self.child.id())
    }

    /// Sends `sig` if the process has not been reaped.
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // It may have exited unreaped (a zombie takes signals), so nothing to report.
            let _ = send_signal(pid, sig);
        }
    }

    /// How it ended, once: the first call after it exited reaps it and says how; later calls
    /// (and calls while it runs) say None.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return None;
        }
        self.status = self.child.try_wait().ok()?;
        self.status
    }

    /// SIGKILL, and reap it. Nothing to do if it was reaped already.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            let _ = send_signal(self.child.id(), SIGKILL);
            self.status = self.child.wait().ok();
        }
    }

    /// Waits up to `grace` for it to exit (at once if it had); after that it is killed and the
    /// error says so.
    pub async fn wait_exit(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                continue;
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "{} did not stop in {}s; killing it",
                    self.name,
                    grace.as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM, then [`Process::wait_exit`].
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.signal(SIGTERM);
        self.wait_exit(grace).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
