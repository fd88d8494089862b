//! How gitflock talks to an upstream through libgit2: the credentials it may offer (those in
//! the URL, then the ssh agent, each tried once so a wrong one fails instead of looping), a
//! run's cancellation (checked in the transfer callbacks), and the process-wide network
//! timeouts. Both the advertisement reader and the fetch use it.

use git2::{Direction, Remote, RemoteCallbacks, RemoteConnection};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// Callbacks for one connection to `url`, ending the transfer once `cancel` fires.
pub(super) fn callbacks<'a>(url: &'a str, cancel: &'a CancellationToken) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let mut tried_plain = false;
    let mut tried_agent = false;
    cb.credentials(move |_url, user_from_url, allowed| {
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) && !tried_plain {
            tried_plain = true;
            if let Ok(u) = url::Url::parse(url)
                && !u.username().is_empty()
            {
                let user = percent_encoding::percent_decode_str(u.username()).decode_utf8_lossy();
                let pass = percent_encoding::percent_decode_str(u.password().unwrap_or(""))
                    .decode_utf8_lossy();
                return git2::Cred::userpass_plaintext(&user, &pass);
            }
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) && !tried_agent {
            tried_agent = true;
            return git2::Cred::ssh_key_from_agent(user_from_url.unwrap_or("git"));
        }
        Err(git2::Error::from_str("authentication failed"))
    });
    cb.transfer_progress(move |_| !cancel.is_cancelled());
    cb.sideband_progress(move |_| !cancel.is_cancelled());
    cb
}

/// A libgit2 error as a message safe to show (credentials masked).
pub(super) fn clean(e: git2::Error) -> String {
    gitflock_core::redact::redact(e.message())
}

/// A failed network step: "cancelled" when the run was cancelled, else the error.
pub(super) fn failed(e: git2::Error, cancel: &CancellationToken) -> String {
    if cancel.is_cancelled() {
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
