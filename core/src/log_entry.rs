//! A log entry: validation, and its commit message — exactly the seed's
//! `[level] content create_at`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
/// Content longer than this is refused.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// A validated entry, ready to become a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub level: String,
    pub content: String,
    /// Unix milliseconds.
    pub create_at: i64,
}

/// An entry as read back from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub height: u64,
    pub commit: String,
    pub entry: Entry,
}

pub fn check_level(level: &str) -> Result<String, String> {
    let l = level.trim().to_ascii_lowercase();
    if LEVELS.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(format!(
            "level {:?}: one of {}",
            crate::task::shorten(level, 20),
            LEVELS.join(", ")
        ))
    }
}

/// Content may hold newlines and tabs, never other control characters (a NUL would cut a
/// commit message short; escapes would reach terminals).
pub fn check_content(content: &str) -> Result<(), String> {
    if content.trim().is_empty() {
        return Err("content is empty".into());
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(format!(
            "content is {} bytes; at most {MAX_CONTENT_BYTES}",
            content.len()
        ));
    }
    if content
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("content holds a control character".into());
    }
    Ok(())
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| {
        format!(
            "create_at {:?} is not an RFC 3339 time",
            crate::task::shorten(text, 40)
        )
    })?;
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if ms <= 0 {
        return Err("create_at is before 1970".into());
    }
    Ok(ms)
}

/// Refuses a `create_at` more than `max_skew` ahead of `now_ms` (the writing node's clock).
/// Entries never go back in time, so an entry from the far future would stamp every later one
/// with its own time, for ever.
pub fn check_not_ahead(
    create_at: i64,
    now_ms: i64,
    max_skew: std::time::Duration,
) -> Result<(), String> {
    let limit = now_ms.saturating_add(max_skew.as_millis().min(i64::MAX as u128) as i64);
    if create_at > limit {
        return Err(format!(
            "create_at {} is more than {}s ahead of this node's clock ({})",
            format_time(create_at),
            max_skew.as_secs(),
            format_time(now_ms)
        ));
    }
    Ok(())
}

/// RFC 3339, UTC, always with milliseconds: the form stored in messages.
pub fn format_time(ms: i64) -> String {
    crate::task::rfc3339_ms(ms)
}

impl Entry {
    pub fn message(&self) -> String {
        format!(
            "[{}] {} {}",
            self.level,
            self.content,
            format_time(self.create_at)
        )
    }

    /// Parses a commit message back; None if it is not exactly the seed's format.
    pub fn parse(message: &str) -> Option<Entry> {
        let rest = message.strip_prefix('[')?;
        let (level, rest) = rest.split_once("] ")?;
        if !LEVELS.contains(&level) {
            return None;
        }
        let (content, at) = rest.rsplit_once(' ')?;
        let create_at = parse_time(at).ok()?;
        if format_time(create_at) != at || check_content(content).is_err() {
            return None;
        }
        Some(Entry {
            level: level.to_string(),
            content: content.to_string(),
            create_at,
        })
    }
}

/// The genesis commit's message.
pub fn genesis_message(node: &str, at_ms: i64) -> String {
    format!(
        "[genesis] gitflock log chain of node {node} {}",
        format_time(at_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_the_seed_format() {
        let e = Entry {
            level: "warn".into(),
            content: "disk [almost] full\nsee /var".into(),
            create_at: 1_700_000_000_123,
        };
        let m = e.message();
        assert_eq!(
            m,
            "[warn] disk [almost] full\nsee /var 2023-11-14T22:13:20.123Z"
        );
        assert_eq!(Entry::parse(&m), Some(e));
    }

    #[test]
    fn malformed_messages_do_not_parse() {
        for m in [
            "",
            "[info]no space 2023-11-14T22:13:20.123Z",
            "[loud] x 2023-11-14T22:13:20.123Z",
            "[info] x yesterday",
            "[info] x 2023-11-14T23:13:20.123+01:00",
            "[info]  2023-11-14T22:13:20.123Z",
        ] {
            assert_eq!(Entry::parse(m), None, "{m:?}");
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(check_level("LOUD").is_err());
        assert_eq!(check_level(" WARN ").unwrap(), "warn");
        assert!(check_content("").is_err());
        assert!(check_content("a\0b").is_err());
        assert!(check_content("a\u{1b}[2Jb").is_err());
        assert!(check_content(&"x".repeat(MAX_CONTENT_BYTES + 1)).is_err());
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert_eq!(
            parse_time("2023-11-14T23:13:20.123+01:00").unwrap(),
            1_700_000_000_123
        );
    }

    #[test]
    fn times_ahead_of_the_clock_are_refused_beyond_the_skew() {
        let now = 1_700_000_000_000;
        let skew = std::time::Duration::from_secs(300);
        assert!(check_not_ahead(now, now, skew).is_ok());
        assert!(check_not_ahead(now + 300_000, now, skew).is_ok());
        assert!(check_not_ahead(now - 86_400_000, now, skew).is_ok());
        let e =
            check_not_ahead(parse_time("9999-12-31T23:59:59Z").unwrap(), now, skew).unwrap_err();
        assert_eq!(
            e,
            "create_at 9999-12-31T23:59:59.000Z is more than 300s ahead of this node's clock \
             (2023-11-14T22:13:20.000Z)"
        );
        assert!(check_not_ahead(now + 1, now, std::time::Duration::ZERO).is_err());
    }
}
