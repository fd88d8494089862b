//! The chain's remote (`[chain] remote`), reached with the `git` CLI (pushes of blocks, the
//! branch check of verification) without its credentials ever on a command line, where `ps`
//! shows them to every user of the machine.
//!
//! The URL goes to git as the url of a remote defined in the environment (`GIT_CONFIG_COUNT`,
//! `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`; a process's environment is readable by its own
//! user only), and git is given that remote's name. An http(s) URL's credentials are taken out
//! of it altogether: git's remote helper (`git remote-https <name> <url>`) is run with the URL
//! as an argument, so they are given by a credential helper scoped to the URL's own scheme,
//! host and port, which reads them from the environment. Redirects are not followed, so
//! nothing is sent to another host.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::ChainError;
use gitflock_core::redact::redact;

/// The name git knows the remote by.
const REMOTE: &str = "gitflock-chain-remote";
/// Where the credential helper finds the user and the password.
const USER_VAR: &str = "GITFLOCK_CHAIN_REMOTE_USER";
const PASSWORD_VAR: &str = "GITFLOCK_CHAIN_REMOTE_PASSWORD";
/// A credential helper that answers `get` with the variables above (the shell expands them:
/// its command line holds only their names).
const HELPER: &str = "!f() { test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \
                      \"$GITFLOCK_CHAIN_REMOTE_USER\" \"$GITFLOCK_CHAIN_REMOTE_PASSWORD\"; }; f";
const PUSH_TIMEOUT: Duration = Duration::from_secs(120);
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment that defines the remote for git: (name, value) pairs.
fn env(remote: &str) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = Vec::new();
    let mut vars = vec![("GIT_TERMINAL_PROMPT".to_string(), "0".to_string())];
    let (bare, had_credentials) = gitflock_core::redact::strip_credentials(remote);
    let web = ["http://", "https://"].iter().any(|s| {
        remote
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    match url::Url::parse(remote) {
        Ok(u) if web && had_credentials => {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let origin = match u.port() {
                Some(p) => format!("{}://{}:{p}", u.scheme(), u.host_str().unwrap_or("")),
                None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
            };
            config.push((format!("remote.{REMOTE}.url"), bare));
            config.push((format!("credential.{origin}.helper"), HELPER.into()));
            vars.push((USER_VAR.into(), decode(u.username())));
            vars.push((PASSWORD_VAR.into(), decode(u.password().unwrap_or(""))));
        }
        _ => config.push((format!("remote.{REMOTE}.url"), remote.to_string())),
    }
    config.push(("http.followRedirects".into(), "false".into()));
    vars.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
    for (i, (k, v)) in config.into_iter().enumerate() {
        vars.push((format!("GIT_CONFIG_KEY_{i}"), k));
        vars.push((format!("GIT_CONFIG_VALUE_{i}"), v));
    }
    vars
}

/// Pushes `commit` of the repository at `git_dir` to `remote` as `branch` (never forced).
pub(super) async fn push(
    git_dir: &Path,
    commit: &str,
    remote: &str,
    branch: &str,
) -> Result<(), ChainError> {
    let refspec = format!("{commit}:refs/heads/{branch}");
    let out = tokio::time::timeout(
        PUSH_TIMEOUT,
        tokio::process::Command::new("git")
            .arg("--git-dir")
            .arg(git_dir)
            .args(["push", "--porcelain", REMOTE, &refspec])
            .envs(env(remote))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| ChainError::Io(format!("push timed out after {}s", PUSH_TIMEOUT.as_secs())))?
    .map_err(|e| ChainError::Io(format!("cannot run git: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reason = text
        .lines()
        .find(|l| {
            l.starts_with('!')
                || l.contains("rejected")
                || l.starts_with("fatal")
                || l.starts_with("error")
        })
        .unwrap_or("push failed")
        .trim();
    Err(ChainError::Io(redact(&format!(
        "push of {branch} to {remote} refused: {reason}"
    ))))
}

/// The remote's commit for `branch`, if the branch exists (blocking; at most a minute).
pub(super) fn ls_remote(remote: &str, branch: &str) -> Result<Option<String>, ChainError> {
    let mut child = std::process::Command::new("git")
        .args(["ls-remote", REMOTE, &format!("refs/heads/{branch}")])
        .envs(env(remote))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ChainError::Io(format!("cannot run git: {e}")))?;
    // Read both pipes while waiting, so a full pipe never stalls git.
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let read = |p: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = std::io::Read::read_to_end(&mut p, &mut buf);
            }
            buf
        })
    };
    let out = read(stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let err = read(stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let deadline = Instant::now() + LIST_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ChainError::Io(redact(&format!(
                "listing {remote} timed out after {}s",
                LIST_TIMEOUT.as_secs()
            ))));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(ChainError::Io(redact(&format!(
            "cannot list {remote}: {}",
            String::from_utf8_lossy(&err).trim()
        ))));
    }
    Ok(String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn credentials_leave_the_url_and_are_scoped_to_its_host() {
        let vars = env("https://alice:s%40cret'x@git.example.org:8443/logs.git");
        assert_eq!(var(&vars, "GIT_CONFIG_COUNT"), Some("3"));
        assert_eq!(
            var(&vars, "GIT_CONFIG_VALUE_0"),
            Some("https://git.example.org:8443/logs.git")
        );
        assert_eq!(
            var(&vars, "GIT_CONFIG_KEY_1"),
            Some("credential.https://git.example.org:8443.helper")
        );
        assert_eq!(var(&vars, USER_VAR), Some("alice"));
        assert_eq!(var(&vars, PASSWORD_VAR), Some("s@cret'x"));
        for (k, v) in &vars {
            if k != PASSWORD_VAR {
                assert!(!v.contains("cret"), "{k}={v}");
            }
        }
        assert_eq!(var(&vars, "GIT_CONFIG_KEY_2"), Some("http.followRedirects"));
    }

    #[test]
    fn other_remotes_are_named_as_given() {
        for r in ["/srv/logs.git", "git@h:logs.git", "https://h/logs.git"] {
            let vars = env(r);
            assert_eq!(var(&vars, "GIT_CONFIG_VALUE_0"), Some(r));
            assert_eq!(var(&vars, PASSWORD_VAR), None);
        }
    }
}
