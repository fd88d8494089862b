//! A mirror's upstream URL: the one gate for hostile URLs, and the repository identity it
//! names.
//!
//! - [`MirrorUrl::parse`] is the one gate for upstream URLs: schemes https, http, git, ssh
//!   (and scp-like `user@host:path`), `file` only when allowed; transport helpers (`ext::…`),
//!   option-looking text and control characters are refused.
//! - A repository's identity is its host (lower case), port and path without a trailing
//!   `.git` — not its scheme or credentials: `https://h/a` and `git://h/a.git` are one mirror.
//!   The identity gives the storage path, the task id (UUID v5) and the placement hash. Path
//!   segments are compared in their canonical form (RFC 3986 §6.2.2: escapes of unreserved
//!   characters decoded, hex digits in upper case), so `/%61` and `/a` are one repository.
//! - Storage paths never nest: no mirror's directory lies inside another's (a mirror stored
//!   in `a.git/refs/…` would have its refs pruned by the outer one, and one in `a.git/HEAD/…`
//!   would be removed by the outer one's first run).
//!
//! It lives in core (not in the node's `mirror` module) because the config checks
//! `[mirror] list_url` with it and the CLI and dashboard name mirrors by it; none of them
//! links git.

use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub const MAX_URL_BYTES: usize = 2048;

/// An upstream URL that passed the checks, with its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorUrl {
    /// What git is given (credentials included).
    pub fetch_url: String,
    /// Host (lower case) and `:port` if one was given.
    pub host: String,
    /// Path segments, percent-encoded in the canonical form (every `%` starts the escape of a
    /// byte that is not an unreserved character), the last without `.git`.
    pub segments: Vec<String>,
}

impl MirrorUrl {
    pub fn parse(text: &str, allow_file: bool) -> Result<MirrorUrl, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("the upstream URL is empty".into());
        }
        if t.len() > MAX_URL_BYTES {
            return Err(format!("the upstream URL is over {MAX_URL_BYTES} bytes"));
        }
        if t.starts_with('-') {
            return Err("the upstream URL looks like an option (starts with '-')".into());
        }
        let scheme_end = t.find("://");
        if let Some(i) = t.find("::")
            && scheme_end.is_none_or(|s| i < s)
        {
            return Err(
                "transport helpers like ext:: are refused; use https, http, git or ssh".into(),
            );
        }
        if t.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the upstream URL holds a space or control character".into());
        }
        if scheme_end.is_none() {
            return Self::scp_like(t, allow_file);
        }
        let u = url::Url::parse(t).map_err(|e| format!("not a URL: {e}"))?;
        let scheme = u.scheme();
        match scheme {
            "https" | "http" | "git" | "ssh" => {}
            "file" if allow_file => {}
            "file" => {
                return Err("file URLs are refused unless [mirror] allow_file_urls = true".into());
            }
            other => {
                return Err(format!(
                    "scheme {:?} is refused; allowed: https, http, git, ssh",
                    crate::task::shorten(other, 20)
                ));
            }
        }
        if u.username().starts_with('-') {
            return Err("the user name looks like an option (starts with '-')".into());
        }
        let host = if scheme == "file" {
            if u.host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err("file URLs must name a local path (file:///…)".into());
            }
            "_local".to_string()
        } else {
            let h = u
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or("the upstream URL has no host")?
                .to_ascii_lowercase();
            check_host(&h)?;
            match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            }
        };
        if u.query().is_some() || u.fragment().is_some() {
            return Err("the upstream URL may not have a query or fragment".into());
        }
        let segments = segments_of(u.path())?;
        Ok(MirrorUrl {
            fetch_url: t.to_string(),
            host,
            segments,
        })
    }

    /// `[user@]host:path`, the scp-like form of ssh.
    fn scp_like(t: &str, _allow_file: bool) -> Result<MirrorUrl, String> {
        let Some((left, path)) = t.split_once(':') else {
            return Err(
                "not a URL: expected scheme://host/path (https, http, git or ssh) or user@host:path"
                    .into(),
            );
        };
        if left.contains('/') || path.is_empty() {
            return Err("not a URL: expected scheme://host/path or user@host:path".into());
        }
        // `host:path` without a user reads like `javascript:…` or `C:…`: ask for a clear form.
        let Some((user, host)) = left.rsplit_once('@') else {
            return Err(
                "not a URL: expected scheme://host/path (https, http, git or ssh) or user@host:path"
                    .into(),
            );
        };
        if user.is_empty()
            || user.starts_with('-')
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err("the user name of the ssh URL is not valid".into());
        }
        let host = host.to_ascii_lowercase();
        check_host(&host)?;
        if path.starts_with('-') {
            return Err("the path looks like an option (starts with '-')".into());
        }
        let encoded: String = path
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT_SET).to_string())
            .collect::<Vec<_>>()
            .join("/");
        let segments = segments_of(&normalize_dots(&encoded)?)?;
        Ok(MirrorUrl {
            fetch_url: t.to_string(),
            host,
            segments,
        })
    }

    /// `host[:port]/path` without `.git`: the repository's identity.
    pub fn key(&self) -> String {
        format!("{}/{}", self.host, self.segments.join("/"))
    }

    /// The bare repository's path under the mirrors directory: `<host>/<path>.git`.
    /// Injective: segments stay percent-encoded and a leading '.' is encoded, so no two
    /// identities share a path and nothing escapes the directory. Never nested: only the last
    /// component ends in `.git`, since a directory segment's `.git` ending is encoded
    /// (`a.git/x` is stored as `a%2Egit/x.git`), so no mirror lies inside another's directory.
    /// Canonical segments never hold `%2E` (a dot is unreserved), so both encodings stay
    /// injective.
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::from(safe_segment(&self.host));
        let n = self.segments.len();
        for (i, s) in self.segments.iter().enumerate() {
            if i + 1 == n {
                p.push(format!("{}.git", safe_segment(s)));
            } else {
                let dir = safe_segment(s);
                match dir.strip_suffix(".git") {
                    Some(stem) => p.push(format!("{stem}%2Egit")),
                    None => p.push(dir),
                }
            }
        }
        p
    }

    /// The mirror task's id: the same repository always gets the same task.
    pub fn task_id(&self) -> String {
        task_id_for_key(&self.key())
    }

    /// Where the identity falls on the placement ring.
    pub fn place(&self) -> u32 {
        hash32(&self.key())
    }

    /// The URL with credentials masked, for logs and output.
    pub fn display(&self) -> String {
        crate::redact::redact(&self.fetch_url)
    }
}

pub fn task_id_for_key(key: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("gitflock-mirror:{key}").as_bytes(),
    )
    .hyphenated()
    .to_string()
}

/// Characters encoded in a path segment of the scp-like form (as a URL parser would).
const SEGMENT_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn check_host(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 253 {
        return Err("the upstream URL has no valid host".into());
    }
    if h.starts_with(['-', '.'])
        || !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
    {
        return Err(format!(
            "host {:?} is not a valid host name",
            crate::task::shorten(h, 64)
        ));
    }
    Ok(())
}

/// Resolves `.` and `..` segments the way a URL parser does; refuses to climb above the root.
fn normalize_dots(path: &str) -> Result<String, String> {
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err("the path climbs above the root ('..')".into());
                }
            }
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

fn segments_of(path: &str) -> Result<Vec<String>, String> {
    let mut segs: Vec<String> = path
        .split('/')
        .map(canonical_segment)
        .filter(|s| !s.is_empty() && s != ".")
        .collect();
    if segs.iter().any(|s| s == "..") {
        return Err("the path holds '..'".into());
    }
    if let Some(last) = segs.last_mut()
        && let Some(stem) = last.strip_suffix(".git")
    {
        *last = stem.to_string();
    }
    if segs.last().is_none_or(|s| s.is_empty()) {
        return Err("the upstream URL names no repository path".into());
    }
    if segs.len() > 32 {
        return Err("the repository path is over 32 segments deep".into());
    }
    Ok(segs)
}

/// A percent-encoded segment in its canonical form (RFC 3986 §6.2.2): escapes of unreserved
/// characters (letters, digits, `-._~`) decoded, the other escapes' hex digits in upper case,
/// and a `%` that starts no escape encoded as `%25`. Afterwards every `%` starts the escape of
/// a byte that is not unreserved; in particular no segment holds `%2E`.
fn canonical_segment(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let c = s[i..].chars().next().expect("a char at a char boundary");
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (Some(hi), Some(lo)) => {
                let byte = (hi * 16 + lo) as u8;
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
                i += 3;
            }
            _ => {
                out.push_str("%25");
                i += 1;
            }
        }
    }
    out
}

/// A file-name-safe, injective form of a segment: '%' stays (it only ever starts an escape in
/// an encoded segment), a leading '.' becomes `%2E`, and ':' in `host:port` stays.
fn safe_segment(s: &str) -> String {
    match s.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => s.to_string(),
    }
}

/// Where a text falls on the 32-bit placement ring (the first four bytes of its SHA-256).
pub fn hash32(text: &str) -> u32 {
    let d = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A short, stable digest for names derived from a key.
pub fn digest_hex(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(u: &str) -> MirrorUrl {
        MirrorUrl::parse(u, false).unwrap_or_else(|e| panic!("{u}: {e}"))
    }

    #[test]
    fn allowed_schemes_parse_to_one_identity() {
        let a = ok("https://GitHub.com/torvalds/linux.git");
        assert_eq!(a.key(), "github.com/torvalds/linux");
        assert_eq!(a.rel_path(), PathBuf::from("github.com/torvalds/linux.git"));
        for same in [
            "git://github.com/torvalds/linux",
            "http://github.com/torvalds/linux/",
            "ssh://git@github.com/torvalds/linux.git",
            "git@github.com:torvalds/linux.git",
            "https://user:tok@github.com/torvalds/linux",
        ] {
            let b = ok(same);
            assert_eq!(b.key(), a.key(), "{same}");
            assert_eq!(b.task_id(), a.task_id(), "{same}");
        }
        assert_eq!(
            ok("git://127.0.0.1:9418/a/b.git").rel_path(),
            PathBuf::from("127.0.0.1:9418/a/b.git")
        );
    }

    #[test]
    fn hostile_urls_are_refused() {
        for bad in [
            "",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "-uhttps://x/y",
            "--upload-pack=touch /tmp/x",
            "https://h/a\nb",
            "https://h/a b",
            "ftp://h/a",
            "javascript:alert(1)",
            "file:///etc",
            "/srv/git/a.git",
            "https:///a",
            "https://h/",
            "https://-h/a",
            "ssh://-oProxyCommand=x@h/a",
            "-oProxyCommand=x@h:a",
            "h:-a",
            "git@h:../../etc",
            "https://h/a?x=1",
        ] {
            assert!(MirrorUrl::parse(bad, false).is_err(), "accepted {bad:?}");
        }
        assert!(MirrorUrl::parse("file:///srv/git/a.git", true).is_ok());
        assert!(MirrorUrl::parse("file://evil.host/a.git", true).is_err());
    }

    #[test]
    fn storage_paths_stay_inside_and_do_not_collide() {
        let cases = [
            "https://h/a/../../../etc/passwd",
            "https://h/%2e%2e/x",
            "https://h/.git/x",
            "https://h/a%2Fb",
            "https://h/a/b",
            "https://h/a%20b",
            "https://h/a_b",
            "https://h:8443/a/b",
            "https://h/a.git.git",
            "https://h/a.git",
        ];
        let mut seen = std::collections::HashMap::new();
        for c in cases {
            let Ok(m) = MirrorUrl::parse(c, false) else {
                continue;
            };
            let p = m.rel_path();
            for comp in p.components() {
                assert!(
                    matches!(comp, std::path::Component::Normal(s) if !s.to_string_lossy().starts_with('.')),
                    "{c} → {p:?}"
                );
            }
            if let Some(other) = seen.insert(p.clone(), m.key()) {
                assert_eq!(other, m.key(), "{c} collides at {p:?}");
            }
        }
        assert_eq!(seen.len(), 10, "{seen:?}");
    }

    #[test]
    fn storage_paths_never_nest() {
        let urls = [
            "https://h/a",
            "https://h/a.git/refs/x",
            "https://h/a.git/refs/heads/main",
            "https://h/a.git/objects/x",
            "https://h/a.git/HEAD/x",
            "https://h/a.git.git/x",
            "https://h/a%2Egit/x",
            "https://h/.git/x",
            "https://h/%2Egit/x",
            "https://h/a/b",
            "https://h/a/b.git/c",
            "git@h:a.git/refs/y.git",
        ];
        let paths: Vec<(String, PathBuf)> = urls
            .iter()
            .map(|u| (u.to_string(), ok(u).rel_path()))
            .collect();
        for (u, p) in &paths {
            for (v, q) in &paths {
                if u != v && ok(u).key() != ok(v).key() {
                    assert!(
                        !q.starts_with(p),
                        "{v} ({q:?}) is stored inside {u} ({p:?})"
                    );
                }
            }
            let dirs: Vec<_> = p.components().collect();
            for c in &dirs[..dirs.len() - 1] {
                let c = c.as_os_str().to_string_lossy();
                assert!(!c.ends_with(".git"), "{u}: directory {c} of {p:?}");
            }
        }
        assert_eq!(
            ok("https://h/a.git/refs/x").rel_path(),
            PathBuf::from("h/a%2Egit/refs/x.git")
        );
    }

    #[test]
    fn escapes_of_unreserved_characters_name_the_same_repository() {
        assert_eq!(ok("https://h/%61/b%2Dc").key(), ok("https://h/a/b-c").key());
        assert_eq!(ok("https://h/a%2fb").key(), ok("https://h/a%2Fb").key());
        assert_ne!(ok("https://h/a%2Fb").key(), ok("https://h/a/b").key());
        assert_eq!(ok("https://h/%2Egit/x").key(), ok("https://h/.git/x").key());
        assert_eq!(canonical_segment("%%32E"), "%252E");
        assert_eq!(canonical_segment("a%zz"), "a%25zz");
        // Whatever the parser makes of escaped dots, no segment climbs.
        for u in ["https://h/a/%2E%2E/%2e%2E/x", "git@h:a/%2E%2E/x"] {
            if let Ok(m) = MirrorUrl::parse(u, false) {
                assert!(!m.segments.iter().any(|s| s == ".."), "{u}: {m:?}");
            }
        }
    }
}
