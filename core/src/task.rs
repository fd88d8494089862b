//! The task model: states, limits, validation of requests, and the JSON form of PRODUCT.md.
//!
//! The state machine (every arrow is one Lua script in `store::scripts`):
//!
//! ```text
//!  create ──► WAITING ──dispatch──► INQUEUE ──claim──► RUNNING ──finish ok──► SUCCEED
//!               ▲  ▲                  │                  │  │
//!               │  └──── hand back ◄──┘                  │  ├─finish failed, attempts left──► WAITING (backoff)
//!               │                                        │  ├─finish failed, none left──────► RUNTIME_ERROR
//!               └──── recurring: finish, due + interval ─┘  └─kill────────────────────────────► KILLED
//!  WAITING / INQUEUE ──kill──► KILLED        any ──delete──► (gone)
//! ```

use gitflock_proto::v1::{Task, TaskResult, TaskState};
use serde_json::{Value, json};

/// Names of the states, exactly the seed's.
pub const STATES: [TaskState; 6] = [
    TaskState::Waiting,
    TaskState::Inqueue,
    TaskState::Running,
    TaskState::RuntimeError,
    TaskState::Succeed,
    TaskState::Killed,
];

/// The task types every node runs. The node's runner registry registers exactly these (a test
/// holds it to that), and the CLI and the dashboard offer and check them without asking a node.
pub const KNOWN_TYPES: [&str; 4] = ["echo", "sleep", "mirror", "block"];

pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_TARGET_BYTES: usize = 4096;
pub const MAX_TYPE_BYTES: usize = 32;
/// Result messages longer than this are cut (on a char boundary) before they are stored.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Results kept per task, newest first.
pub const RESULTS_KEPT: usize = 20;
pub const MAX_INTERVAL_SECS: u64 = 366 * 86400;
pub const MAX_TIMEOUT_SECS: u64 = 7 * 86400;
pub const MAX_ATTEMPTS: u32 = 100;

/// Result codes stored with each run.
pub mod code {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const TIMEOUT: i32 = 2;
    pub const KILLED: i32 = 3;
    pub const HANDED_BACK: i32 = 4;
}

pub fn state_name(s: TaskState) -> &'static str {
    s.as_str_name()
}

pub fn parse_state(text: &str) -> Option<TaskState> {
    TaskState::from_str_name(&text.to_ascii_uppercase())
}

/// True when the state is final (nothing will move the task again but a delete).
pub fn is_final(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::RuntimeError | TaskState::Succeed | TaskState::Killed
    )
}

/// A task id is a UUID in its hyphenated lower-case form.
pub fn check_id(id: &str) -> Result<(), String> {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if u.hyphenated().to_string() == id => Ok(()),
        _ => Err(format!(
            "malformed task id {:?}: expected a UUID",
            shorten(id, 64)
        )),
    }
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Text fields may not hold control characters (they end up in terminals, logs and pages:
/// ESC starts a terminal escape sequence, and C1 controls like U+009B are one on their own)
/// nor the invisible marks that reorder or hide text (bidirectional overrides and isolates,
/// zero-width characters), which make a name read as something it is not.
pub fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<(), String> {
    if value.is_empty() && !allow_empty {
        return Err(format!("{field} is empty"));
    }
    if value.len() > max {
        return Err(format!("{field} is {} bytes; at most {max}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} holds a control character"));
    }
    if value.chars().any(is_invisible_mark) {
        return Err(format!(
            "{field} holds an invisible formatting character (a bidirectional override or a \
             zero-width mark)"
        ));
    }
    Ok(())
}

/// Characters that change how the text around them is shown without showing themselves.
pub fn is_invisible_mark(c: char) -> bool {
    // Not U+200C/U+200D (zero-width non-joiner and joiner): Persian, Indic scripts and emoji
    // need them.
    matches!(c,
        '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A name as it may be shown in a message: characters a name may not hold are escaped
/// (`\u{1b}`), so a hostile name cannot drive the terminal or the page that shows the error.
pub fn printable_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() || is_invisible_mark(c) || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn check_type_name(t: &str) -> Result<(), String> {
    check_text("type", t, MAX_TYPE_BYTES, false)?;
    if !t
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!(
            "type {:?}: lower-case letters, digits, '-' and '_' only",
            t
        ));
    }
    Ok(())
}

/// Cuts a string to at most `max` bytes on a char boundary.
pub fn shorten(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// RFC 3339 in UTC with exactly three digits of milliseconds (`…:56.940Z`, never `…:56.94Z`),
/// so times line up in tables and compare as text; 0 (never) renders as JSON null.
pub fn rfc3339(ms: i64) -> Value {
    if ms <= 0 {
        return Value::Null;
    }
    match rfc3339_ms(ms) {
        s if s.is_empty() => Value::Null,
        s => Value::String(s),
    }
}

/// The text of [`rfc3339`] (also the log chain's form of a time); empty out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => String::new(),
    }
}

pub fn result_json(r: &TaskResult) -> Value {
    json!({
        "code": r.code,
        "message": r.message,
        "node": r.node,
        "attempt": r.attempt,
        "started_at": rfc3339(r.started_at),
        "finished_at": rfc3339(r.finished_at),
    })
}

/// The task's JSON form, as PRODUCT.md fixes it (plus a few extra fields).
pub fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "type": t.r#type,
        "target": t.target,
        "state": state_name(t.state()),
        "node": t.node,
        "attempts": t.attempts,
        "max_attempts": t.max_attempts,
        "interval_secs": t.interval_secs,
        "timeout_secs": t.timeout_secs,
        "runs": t.runs,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "due_at": rfc3339(t.due_at),
        "results": t.results.iter().map(result_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_canonical_uuids() {
        assert!(check_id(&new_id()).is_ok());
        for bad in [
            "",
            "1",
            "../../etc",
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_checks_refuse_control_characters_and_size() {
        assert!(check_text("name", "ok", 10, false).is_ok());
        assert!(check_text("name", "", 10, false).is_err());
        assert!(check_text("name", "a\u{1b}[2J", 10, false).is_err());
        assert!(check_text("name", &"x".repeat(11), 10, false).is_err());
    }

    #[test]
    fn names_refuse_terminal_escapes_and_invisible_marks() {
        for bad in [
            "a\u{1b}[31mred",
            "a\u{9b}31mred",
            "a\u{7f}",
            "invoice\u{202E}fdp.exe",
            "a\u{2067}b",
            "zero\u{200B}width",
            "bom\u{FEFF}",
        ] {
            assert!(check_text("name", bad, 256, false).is_err(), "{bad:?}");
        }
        assert!(check_text("name", "Grüße, 日本語 — ok", 256, false).is_ok());
        assert_eq!(printable_name("r/\u{1b}[31mred"), "r/\\u{1b}[31mred");
        assert_eq!(printable_name("a\u{202E}b\\"), "a\\u{202e}b\\\\");
        assert_eq!(printable_name("plain/name"), "plain/name");
    }

    #[test]
    fn shorten_keeps_char_boundaries() {
        assert_eq!(shorten("héllo", 2), "h");
        assert_eq!(shorten("abc", 5), "abc");
    }

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_700_000_000_123),
            json!("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(rfc3339(0), Value::Null);
        // Fixed width: trailing zeros are kept.
        assert_eq!(
            rfc3339(1_700_000_000_940),
            json!("2023-11-14T22:13:20.940Z")
        );
        assert_eq!(
            rfc3339(1_700_000_000_000),
            json!("2023-11-14T22:13:20.000Z")
        );
    }
}
