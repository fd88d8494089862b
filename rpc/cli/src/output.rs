//! How the CLI prints: pretty JSON, fixed-width RFC 3339 times, a node's JSON form, and
//! [`clean`], through which every text a node sent passes before it reaches the terminal.

use gitflock_core::task::rfc3339;
use gitflock_proto::v1::NodeInfo;
use serde_json::{Value, json};
use std::borrow::Cow;

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn node_json(n: &NodeInfo) -> Value {
    json!({
        "name": n.name, "addr": n.addr, "role": n.role, "state": n.state, "epoch": n.epoch,
        "last_heartbeat": rfc3339(n.last_heartbeat), "running": n.running,
        "concurrency": n.concurrency, "version": n.version, "metrics": n.metrics,
    })
}

/// A time as the text output shows it (`-`: never).
pub fn when(ms: i64) -> String {
    match rfc3339(ms) {
        Value::String(s) => s,
        _ => "-".into(),
    }
}

/// `text` safe to print on a terminal, on one line: control characters (ESC, CR, newlines,
/// tabs, C1 controls) and the bidirectional overrides that can make a line read as something
/// it is not become visible escapes (`\n`, `\t`, `\r`, `\x1b`, `\u{202e}`). A task name, a log
/// entry or an error message therefore can neither move the cursor, recolour the terminal,
/// nor split one record over several lines.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Prints a table: a header row, then the rows, each column as wide as its widest cell
/// (the last one unpadded). Cells are [`clean`]ed here.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |r: &[String]| {
        let last = r.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                out.push_str(c);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    println!("{}", line(&head));
    for r in &cells {
        println!("{}", line(r));
    }
}

/// `n thing` or `n things`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(clean("plain text"), "plain text");
        assert_eq!(clean("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(clean("\u{1b}[2Jgone"), "\\x1b[2Jgone");
        assert_eq!(clean("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(clean("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert!(!clean("\u{7}\u{0}\u{7f}").chars().any(|c| c.is_control()));
    }

    #[test]
    fn times_have_fixed_milliseconds() {
        assert_eq!(when(1_700_000_000_940), "2023-11-14T22:13:20.940Z");
        assert_eq!(when(0), "-");
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(plural(1u32, "entry", "entries"), "1 entry");
        assert_eq!(plural(0u32, "entry", "entries"), "0 entries");
    }
}
