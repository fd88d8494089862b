//! Secrets never reach logs, errors or output: credentials inside URLs are masked.

/// Replaces the `user:password@` (or `token@`) part of every URL in `text` with `***@`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
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

#[cfg(test)]
mod tests {
    use super::redact;

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
}
