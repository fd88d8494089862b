//! A small HTTP server on loopback for the tests of where credentials go: it records the head
//! of every request (request line and headers) and answers what the test says, closing the
//! connection after each answer. Test-only: it panics on trouble.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub struct FakeHttp {
    pub port: u16,
    /// The heads of the requests received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    /// Serves on a free port; `answer` gets a request's head and returns the whole response.
    pub fn start(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, answer) = (requests.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (seen, answer) = (seen.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    let _ = conn.write_all(answer(&head).as_bytes());
                });
            }
        });
        FakeHttp { port, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The `Authorization` headers received.
    pub fn authorizations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|h| h.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .collect()
    }
}

/// A response with no body.
pub fn response(status: &str, headers: &[(&str, &str)]) -> String {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    r
}

/// 401 asking for Basic credentials.
pub fn unauthorized() -> String {
    response(
        "401 Unauthorized",
        &[("WWW-Authenticate", "Basic realm=\"gitflock-test\"")],
    )
}

/// Whether a request head carries an `Authorization` header.
pub fn has_authorization(head: &str) -> bool {
    head.lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:"))
}

/// Every process's command line (arguments joined by spaces) that `pattern` occurs in.
pub fn command_lines_with(pattern: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|line| line.contains(pattern))
        .collect()
}
