//! Push notifications from forges: which repositories moved, if the secret checks out.
//!
//! Accepted proofs, each against `[mirror] webhook_secret`: GitHub's
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, Gitea's / Gogs'
//! `X-Gitea-Signature` / `X-Gogs-Signature: <hex HMAC-SHA256>`, GitLab's `X-Gitlab-Token:
//! <secret>`. Comparisons are constant-time. The payload's repository URLs (GitHub and Gitea:
//! `repository.clone_url/git_url/ssh_url/html_url`; GitLab: `project.git_http_url/
//! git_ssh_url/web_url`) are matched to mirrors by identity, so any of a repo's URLs finds it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;

pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum HookError {
    /// No valid proof of the secret (or no secret configured).
    Unauthenticated(String),
    /// The body is not a payload we understand.
    Invalid(String),
}

pub fn verify(
    headers: &HashMap<String, String>,
    body: &[u8],
    secret: &str,
) -> Result<(), HookError> {
    if secret.is_empty() {
        return Err(HookError::Unauthenticated(
            "webhooks are off: set [mirror] webhook_secret".into(),
        ));
    }
    let hmac_ok = |hex_sig: &str| -> bool {
        let Ok(sig) = hex::decode(hex_sig.trim()) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    if let Some(v) = headers.get("x-hub-signature-256") {
        return match v.strip_prefix("sha256=") {
            Some(h) if hmac_ok(h) => Ok(()),
            _ => Err(HookError::Unauthenticated(
                "X-Hub-Signature-256 does not match".into(),
            )),
        };
    }
    for h in ["x-gitea-signature", "x-gogs-signature"] {
        if let Some(v) = headers.get(h) {
            return if hmac_ok(v) {
                Ok(())
            } else {
                Err(HookError::Unauthenticated(format!("{h} does not match")))
            };
        }
    }
    if let Some(v) = headers.get("x-gitlab-token") {
        return if gitflock_core::secret::same(v.as_bytes(), secret.as_bytes()) {
            Ok(())
        } else {
            Err(HookError::Unauthenticated(
                "X-Gitlab-Token does not match".into(),
            ))
        };
    }
    Err(HookError::Unauthenticated(
        "no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header".into(),
    ))
}

/// The repository URLs a push payload names.
pub fn urls(body: &[u8]) -> Result<Vec<String>, HookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(HookError::Invalid("payload over 1 MiB".into()));
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| HookError::Invalid(format!("payload is not JSON: {e}")))?;
    let mut out: Vec<String> = Vec::new();
    let fields: [(&str, &[&str]); 2] = [
        (
            "repository",
            &[
                "clone_url",
                "git_url",
                "ssh_url",
                "html_url",
                "git_http_url",
                "git_ssh_url",
                "url",
            ],
        ),
        (
            "project",
            &[
                "git_http_url",
                "git_ssh_url",
                "web_url",
                "http_url",
                "ssh_url",
            ],
        ),
    ];
    for (obj, keys) in fields {
        for k in keys {
            if let Some(s) = v.get(obj).and_then(|o| o.get(*k)).and_then(|s| s.as_str())
                && !s.is_empty()
                && !out.iter().any(|o| o == s)
            {
                out.push(s.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(HookError::Invalid(
            "the payload names no repository (repository.clone_url or project.git_http_url)".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn secrets_are_checked_per_forge() {
        let body = br#"{"repository":{"clone_url":"https://h/a.git"}}"#;
        let h = |k: &str, v: String| HashMap::from([(k.to_string(), v)]);
        let good = sign("s3", body);
        assert!(
            verify(
                &h("x-hub-signature-256", format!("sha256={good}")),
                body,
                "s3"
            )
            .is_ok()
        );
        assert!(verify(&h("x-gitea-signature", good.clone()), body, "s3").is_ok());
        assert!(verify(&h("x-gitlab-token", "s3".into()), body, "s3").is_ok());
        assert!(
            verify(
                &h("x-hub-signature-256", format!("sha256={good}")),
                body,
                "other"
            )
            .is_err()
        );
        assert!(verify(&h("x-hub-signature-256", good.clone()), body, "s3").is_err());
        assert!(verify(&h("x-gitlab-token", "s4".into()), body, "s3").is_err());
        assert!(verify(&HashMap::new(), body, "s3").is_err());
        assert!(verify(&h("x-gitlab-token", "".into()), body, "").is_err());
        assert_eq!(urls(body).unwrap(), vec!["https://h/a.git"]);
        let gl = br#"{"project":{"git_http_url":"https://gl/a.git","git_ssh_url":"git@gl:a.git"}}"#;
        assert_eq!(urls(gl).unwrap().len(), 2);
        assert!(urls(b"{}").is_err());
        assert!(urls(b"not json").is_err());
    }
}
