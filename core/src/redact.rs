//! Secrets never reach logs, errors or output: credentials inside URLs are masked.

/// Replaces the credentials (`user:password@`, `token@`) of every URL in `text` with `***@`.
///
/// Each `scheme://` starts an authority that runs, as URL parsers read it (RFC 3986, curl,
/// libgit2), to the first `/`, `?` or `#`; its userinfo is everything before the authority's
/// last `@`. Quotes, `:` and `@` are legal inside a password, so only those three characters
/// (and whitespace, which no URL holds) end it: when in doubt, more is masked, never less.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `url` without its userinfo (for showing or passing it where credentials must not go), and
/// whether it had any.
pub fn strip_credentials(url: &str) -> (String, bool) {
    let Some(i) = url.find("://") else {
        return (url.to_string(), false);
    };
    let (head, tail) = url.split_at(i + 3);
    let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    match tail[..end].rfind('@') {
        Some(at) => (format!("{head}{}", &tail[at + 1..]), true),
        None => (url.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, strip_credentials};

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            redact("push to https://bob:s3cret@git.example.org/x.git refused"),
            "push to https://***@git.example.org/x.git refused"
        );
        assert_eq!(
            redact("https://ghp_TOKEN@github.com/a/b"),
            "https://***@github.com/a/b"
        );
        assert_eq!(
            redact("git://example.org/a and ssh://git@h/x"),
            "git://example.org/a and ssh://***@h/x"
        );
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn quotes_and_at_signs_inside_a_password_are_masked_too() {
        for (text, want) in [
            ("https://u:ab'cd@h/x", "https://***@h/x"),
            ("'https://u:ab'cd@h/x'", "'https://***@h/x'"),
            ("\"https://u:a\"b@h\"", "\"https://***@h\""),
            ("https://u:p@ss@h:8443/x", "https://***@h:8443/x"),
            ("HTTPS://u:p%40x@h", "HTTPS://***@h"),
            (
                "fatal: 'https://u:ab'cd@h/x/' not found",
                "fatal: 'https://***@h/x/' not found",
            ),
            (
                "https://h/a@b and https://u:p@h2?q",
                "https://h/a@b and https://***@h2?q",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
            assert!(!redact(text).contains("cd@"), "{text}");
        }
    }

    #[test]
    fn credentials_are_stripped_from_a_url() {
        assert_eq!(
            strip_credentials("https://u:ab'cd@h:1/x.git"),
            ("https://h:1/x.git".to_string(), true)
        );
        assert_eq!(
            strip_credentials("https://h/a@b"),
            ("https://h/a@b".to_string(), false)
        );
        assert_eq!(
            strip_credentials("/srv/logs.git"),
            ("/srv/logs.git".to_string(), false)
        );
    }
}
