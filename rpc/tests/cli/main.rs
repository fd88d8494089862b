//! The `gitflock` CLI and `gitflock-node` as a user runs them: JSON shapes, exit codes,
//! one-line errors, `gitflock dev` from start to Ctrl-C, and what a new user meets first
//! (help, durations, usage errors, watching, blocks, log lines, mirrors, the node list).
//!
//! One test binary; the scenarios are in the submodules.

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod contract;
mod daemon;
mod usage;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `gitflock ARGS` against `server` with the tests' token.
fn gitflock(server: &str, args: &[&str]) -> Output {
    gitflock_with_input(server, args, "")
}

/// `gitflock ARGS` with `input` on its standard input.
fn gitflock_with_input(server: &str, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(gitflock_harness::binary("gitflock"))
        .env_remove("GITFLOCK_TOKEN")
        .env_remove("GITFLOCK_CA")
        .env("GITFLOCK_SERVER", server)
        .env("GITFLOCK_TOKEN", TOKEN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn one_line_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("gitflock: "), "{err:?}");
    err
}

/// True for an RFC 3339 UTC time with exactly three digits of milliseconds.
fn fixed_ms_time(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 24
        && s.ends_with('Z')
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..23].iter().all(u8::is_ascii_digit)
}
