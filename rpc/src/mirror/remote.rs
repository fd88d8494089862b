//! How gitflock talks to an upstream through libgit2: the credentials it may offer, a run's
//! cancellation (checked in the transfer callbacks), and the process-wide network timeouts.
//! Both the advertisement reader and the fetch use it.
//!
//! Credentials are offered only to the host (and port) of the URL they were written in: after
//! a redirect to another host libgit2 asks again with that host's URL, and gets nothing (an
//! upgrade from `http` to `https` on the same host is the one change allowed). They are those
//! in the URL, then — only with `[mirror] ssh_agent` on — the ssh agent's keys, each tried once
//! so a wrong one fails instead of looping.

use git2::{Direction, Remote, RemoteCallbacks, RemoteConnection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[mirror] ssh_agent`: whether the agent's keys may be offered. Off until the node says.
static SSH_AGENT: AtomicBool = AtomicBool::new(false);

/// libgit2's process-wide network timeouts.
pub fn set_timeouts(connect: Duration, io: Duration) {
    // SAFETY: called once at start, before any git network operation runs.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(
            connect.as_millis().min(i32::MAX as u128) as i32,
        );
        let _ = git2::opts::set_server_timeout_in_milliseconds(
            io.as_millis().min(i32::MAX as u128) as i32,
        );
    }
}

/// Whether ssh upstreams may be offered the keys of the ssh agent (`[mirror] ssh_agent`). Set
/// once at start.
pub fn set_ssh_agent(on: bool) {
    SSH_AGENT.store(on, Ordering::Relaxed);
}

/// The host (lower case) and port a URL reaches, the scheme's port when none is given; for
/// the scp-like `user@host:path`, ssh's.
fn origin(url: &str) -> Option<(String, String, u16)> {
    if !url.contains("://") {
        let (left, _) = url.split_once(':')?;
        let host = left.rsplit_once('@').map_or(left, |(_, h)| h);
        return Some(("ssh".into(), host.to_ascii_lowercase(), 22));
    }
    let u = url::Url::parse(url).ok()?;
    let port = u.port_or_known_default().or(match u.scheme() {
        "ssh" => Some(22),
        "git" => Some(9418),
        _ => None,
    })?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        port,
    ))
}

/// Whether credentials written in `given` may go where libgit2 now asks for them (`asked`).
fn same_host(given: &str, asked: &str) -> bool {
    match (origin(given), origin(asked)) {
        (Some(g), Some(a)) => {
            g == a
                || (g.1 == a.1
                    && (g.0.as_str(), g.2, a.0.as_str(), a.2) == ("http", 80, "https", 443))
        }
        _ => false,
    }
}

/// What a credentials request gets.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    /// The user and password written in the URL.
    Plain(String, String),
    /// The ssh agent's keys, as this user.
    Agent(String),
    /// Nothing, and why.
    Nothing(String),
}

/// Credentials offered so far on one connection.
#[derive(Default)]
struct Tried {
    plain: bool,
    agent: bool,
}

/// The answer to libgit2's request for credentials for `asked` (the URL it talks to now) on a
/// connection to `given` (the upstream's URL, with any credentials).
fn offer(
    given: &str,
    asked: &str,
    user_from_url: Option<&str>,
    allowed: git2::CredentialType,
    agent: bool,
    tried: &mut Tried,
) -> Offer {
    if !same_host(given, asked) {
        let host = origin(asked).map_or_else(
            || "another host".to_string(),
            |o| format!("{}:{}", o.1, o.2),
        );
        return Offer::Nothing(format!(
            "credentials are sent only to the upstream's own host, not to {host}"
        ));
    }
    if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) && !tried.plain {
        tried.plain = true;
        if let Ok(u) = url::Url::parse(given)
            && !u.username().is_empty()
        {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            return Offer::Plain(decode(u.username()), decode(u.password().unwrap_or("")));
        }
    }
    if allowed.contains(git2::CredentialType::SSH_KEY) && agent && !tried.agent {
        tried.agent = true;
        return Offer::Agent(user_from_url.unwrap_or("git").to_string());
    }
    Offer::Nothing("authentication failed".into())
}

/// Callbacks for one connection to `url`, ending the transfer once `cancel` fires.
pub(super) fn callbacks<'a>(url: &'a str, cancel: &'a CancellationToken) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let mut tried = Tried::default();
    cb.credentials(move |asked, user_from_url, allowed| {
        let agent = SSH_AGENT.load(Ordering::Relaxed);
        match offer(url, asked, user_from_url, allowed, agent, &mut tried) {
            Offer::Plain(user, password) => git2::Cred::userpass_plaintext(&user, &password),
            Offer::Agent(user) => git2::Cred::ssh_key_from_agent(&user),
            Offer::Nothing(why) => Err(git2::Error::from_str(&why)),
        }
    });
    cb.transfer_progress(move |_| !cancel.is_cancelled());
    cb.sideband_progress(move |_| !cancel.is_cancelled());
    cb
}

/// A libgit2 error as a message safe to show (credentials masked).
pub(super) fn clean(e: git2::Error) -> String {
    gitflock_core::redact::redact(e.message())
}

/// A failed network step: "cancelled" when the run was cancelled, why the run's sockets were
/// cut when they were (a deadline), else the error.
pub(super) fn failed(e: git2::Error, cancel: &CancellationToken) -> String {
    if let Some(why) = super::net::cut() {
        why
    } else if cancel.is_cancelled() {
        "cancelled".to_string()
    } else {
        clean(e)
    }
}

/// Connects `remote` for a fetch from `url` (its credentials, cancellation by `cancel`).
pub(super) fn connect<'repo, 'c>(
    remote: &'c mut Remote<'repo>,
    url: &'c str,
    cancel: &'c CancellationToken,
) -> Result<RemoteConnection<'repo, 'c, 'c>, String> {
    remote
        .connect_auth(Direction::Fetch, Some(callbacks(url, cancel)), None)
        .map_err(|e| failed(e, cancel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::CredentialType as C;

    fn ask(given: &str, asked: &str, allowed: C, agent: bool) -> Offer {
        offer(
            given,
            asked,
            Some("git"),
            allowed,
            agent,
            &mut Tried::default(),
        )
    }

    #[test]
    fn credentials_go_only_to_their_own_host() {
        let given = "https://alice:s3cret@git.example.org/a.git";
        assert_eq!(
            ask(
                given,
                "https://git.example.org/a.git",
                C::USER_PASS_PLAINTEXT,
                false
            ),
            Offer::Plain("alice".into(), "s3cret".into())
        );
        for elsewhere in [
            "https://evil.example.net/a.git",
            "https://git.example.org:8443/a.git",
            "http://git.example.org/a.git",
            "not a url",
        ] {
            let o = ask(given, elsewhere, C::USER_PASS_PLAINTEXT, false);
            assert!(matches!(o, Offer::Nothing(_)), "{elsewhere}: {o:?}");
        }
        // An upgrade to https on the same host keeps them.
        assert!(matches!(
            ask(
                "http://u:p@h/a",
                "https://h/a",
                C::USER_PASS_PLAINTEXT,
                false
            ),
            Offer::Plain(..)
        ));
    }

    #[test]
    fn each_kind_is_offered_once_and_the_agent_only_when_allowed() {
        let given = "ssh://git@h/a.git";
        assert!(matches!(
            ask(given, given, C::SSH_KEY, false),
            Offer::Nothing(_)
        ));
        assert_eq!(
            ask(given, given, C::SSH_KEY, true),
            Offer::Agent("git".into())
        );
        assert_eq!(
            ask("git@h:a.git", "git@h:a.git", C::SSH_KEY, true),
            Offer::Agent("git".into())
        );
        let mut tried = Tried::default();
        let url = "https://u:p@h/a";
        let plain = C::USER_PASS_PLAINTEXT;
        assert!(matches!(
            offer(url, url, None, plain, true, &mut tried),
            Offer::Plain(..)
        ));
        assert!(matches!(
            offer(url, url, None, plain, true, &mut tried),
            Offer::Nothing(_)
        ));
    }
}
