//! Who may do what: the login password, signed session cookies, CSRF tokens and the login
//! rate limit ([`Auth`]), the cookies that carry them, and [`Viewer`], who a request is from.
//! The `guard` middleware applies these rules to every route.
//!
//! - Login attempts are limited per client ([`ClientKey`]: its address, an IPv6 client by its
//!   /64), counted *before* the password is checked, so a burst of parallel posts gets no more
//!   guesses than a sequence; a right password takes its attempt back. The client is the TCP
//!   peer, or, when the peer is one of `[web] trusted_proxies`, the address the proxy
//!   forwarded (`X-Forwarded-For`, else `X-Real-IP`): behind nginx, one attacker does not lock
//!   everyone out, and without a trusted proxy a forged header changes nothing.
//! - At most [`PASSWORD_CHECKS`] argon2 checks run at once (each costs ~19 MiB and tens of ms
//!   of CPU); a login that finds no free check within [`CHECK_WAIT`] is refused as busy.
//!
//! - A session is a cookie `gitflock_session=v1.<expiry>.<sid>.<mac>`: the MAC is
//!   HMAC-SHA256 over expiry and a random session id, keyed by a secret derived from the
//!   cluster token and the password (so changing either ends every session). No server-side
//!   session table: restarts and several web processes behind one balancer just work.
//! - The CSRF token of a session is HMAC(key, "csrf" | sid). A state-changing request from a
//!   cookie session must carry it (form field `csrf` or header `X-CSRF-Token`).
//! - The login form has its own token (there is no session yet): `l1.<expiry>.<nonce>.<mac>`,
//!   signed like a session, sent both as the cookie `gitflock_login` (Path=/login, HttpOnly,
//!   SameSite=Strict) and as the form field `csrf`. `POST /login` needs both, equal and valid,
//!   so another site cannot log a browser into a session of its choosing (login CSRF).
//! - API clients may send `Authorization: Bearer <cluster token>` instead of a cookie; a
//!   Bearer request carries no ambient authority, so it needs no CSRF token.
//! - Open routes need none of this: `/login`, `/healthz`, the assets, and `POST /hooks/push`
//!   (the node checks the webhook's own secret); the route table lists them (`routes::is_open`).

use crate::config::{Cidr, Password};
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use gitflock_core::secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE: &str = "gitflock_session";
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const LOGIN_COOKIE: &str = "gitflock_login";

/// How long a login form stays usable.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);

/// Signed values: (version prefix, MAC domain). Distinct domains keep a login form token from
/// ever passing as a session.
type Kind = (&'static str, &'static str);
const SESSION: Kind = ("v1", "session");
const LOGIN_FORM: Kind = ("l1", "login");

/// Login attempts a client may have counted in a window (wrong passwords, and checks still
/// running), before 429.
const LOGIN_FAILURES: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Password checks that run at once: a dashboard logs in a handful of people, and a flood of
/// posts must not take every core and hundreds of MiB for argon2.
pub const PASSWORD_CHECKS: usize = 2;
/// How long a login waits for a free password check before it is refused as busy.
pub const CHECK_WAIT: Duration = Duration::from_secs(5);

/// Whom a login attempt counts against: the client's IPv4 address, or its IPv6 /64 (one
/// subscriber's network, from which it may pick any address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6((u128::from(v6) & !(u64::MAX as u128)).into())),
            },
            v4 => ClientKey(v4),
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// A login attempt counted against its client ([`Auth::record_attempt`]).
/// Dropped, it stays counted (a wrong guess); [`Auth::forget_attempt`] takes it back.
#[must_use = "an attempt that made no guess must be forgotten"]
pub struct Attempt {
    client: ClientKey,
    at: Instant,
}

/// How a password check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    Right,
    Wrong,
    /// No check was free within [`CHECK_WAIT`]: the password was not looked at.
    Busy,
}

/// Who is asking, as the handlers see it (a request extension set by the `guard` middleware).
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The CSRF token to put into forms; empty for Bearer clients.
    pub csrf: String,
}

pub struct Auth {
    password: Password,
    token: String,
    key: Vec<u8>,
    ttl: Duration,
    /// Counted attempts per client, in the current window.
    attempts: Mutex<HashMap<ClientKey, Vec<Instant>>>,
    /// Proxies whose forwarding headers name the client.
    trusted_proxies: Vec<Cidr>,
    /// One permit per password check that may run ([`PASSWORD_CHECKS`]).
    checks: Semaphore,
    /// Checks running now, and the most that ever ran at once (also reported as gauges).
    running: AtomicI64,
    peak: AtomicI64,
    gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
}

fn now_secs() -> u64 {
    (gitflock_core::clock::now_ms() / 1000) as u64
}

impl Auth {
    pub fn new(password: Password, token: String, ttl: Duration) -> Auth {
        let material = match &password {
            Password::Hash(h) => h.clone(),
            Password::Plain(p) => p.clone(),
        };
        let mut mac = HmacSha256::new_from_slice(token.as_bytes()).expect("any key length");
        mac.update(b"gitflock-web session key v1|");
        mac.update(material.as_bytes());
        Auth {
            password,
            token,
            key: mac.finalize().into_bytes().to_vec(),
            ttl,
            attempts: Mutex::new(HashMap::new()),
            trusted_proxies: Vec::new(),
            checks: Semaphore::new(PASSWORD_CHECKS),
            running: AtomicI64::new(0),
            peak: AtomicI64::new(0),
            gauges: None,
        }
    }

    /// Takes the client of a request from these proxies' forwarding headers.
    pub fn trusting(mut self, proxies: Vec<Cidr>) -> Auth {
        self.trusted_proxies = proxies;
        self
    }

    /// Reports the password checks running now and their peak on these gauges.
    pub fn observed_by(
        mut self,
        running: prometheus::IntGauge,
        peak: prometheus::IntGauge,
    ) -> Auth {
        self.gauges = Some((running, peak));
        self
    }

    /// The address a request comes from: the TCP peer, unless the peer is a trusted proxy;
    /// then the nearest address in `X-Forwarded-For` (read from the right) that is not itself
    /// a trusted proxy, else `X-Real-IP`. A hop that is no address ends the walk there.
    pub fn client(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let header = |name| {
            req.headers()
                .get_all(name)
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let forwarded = header("x-forwarded-for");
        let hops = if forwarded.trim().is_empty() {
            header("x-real-ip")
        } else {
            forwarded
        };
        let mut client = peer;
        for hop in hops.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
            let Some(ip) = hop_addr(hop) else {
                return client;
            };
            client = ip;
            if !trusted(ip) {
                break;
            }
        }
        client
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"|");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn session_ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed value `<version>.<expiry>.<random id>.<mac>`.
    fn sign(&self, (version, domain): Kind, ttl: Duration) -> String {
        let exp = (now_secs() + ttl.as_secs()).to_string();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mac = self.mac(&[domain, &exp, &id]);
        format!("{version}.{exp}.{id}.{mac}")
    }

    /// The random id of a valid, unexpired value made by [`Auth::sign`] with `version`.
    fn verify(&self, (version, domain): Kind, value: &str) -> Option<String> {
        let mut it = value.split('.');
        let (v, exp, id, mac) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if v != version || it.next().is_some() || id.len() != 32 {
            return None;
        }
        let exp_n: u64 = exp.parse().ok()?;
        if exp_n <= now_secs() {
            return None;
        }
        secret::same(self.mac(&[domain, exp, id]).as_bytes(), mac.as_bytes())
            .then(|| id.to_string())
    }

    /// A new session cookie value.
    pub fn new_session(&self) -> String {
        self.sign(SESSION, self.ttl)
    }

    /// The session id of a valid, unexpired cookie value.
    pub fn check_session(&self, value: &str) -> Option<String> {
        self.verify(SESSION, value)
    }

    /// A new login form token (see the module doc).
    pub fn new_login_token(&self) -> String {
        self.sign(LOGIN_FORM, LOGIN_FORM_TTL)
    }

    /// True when `token` is a valid, unexpired login form token.
    pub fn valid_login_token(&self, token: &str) -> bool {
        self.verify(LOGIN_FORM, token).is_some()
    }

    /// True when the login form's token is valid and the browser's login cookie holds the same.
    pub fn check_login_token(&self, cookie: Option<&str>, field: &str) -> bool {
        cookie.is_some_and(|c| {
            secret::same(c.as_bytes(), field.as_bytes()) && self.valid_login_token(c)
        })
    }

    pub fn csrf_for(&self, sid: &str) -> String {
        self.mac(&["csrf", sid])[..32].to_string()
    }

    /// True when `presented` is the CSRF token of session `sid`.
    pub fn check_csrf(&self, sid: &str, presented: &str) -> bool {
        secret::same(presented.as_bytes(), self.csrf_for(sid).as_bytes())
    }

    pub fn check_bearer(&self, presented: &str) -> bool {
        secret::same(presented.as_bytes(), self.token.as_bytes())
    }

    /// Checks the login password: argon2 on the blocking pool, at most [`PASSWORD_CHECKS`] at
    /// once.
    pub async fn check_password(&self, given: String) -> Checked {
        let h = match &self.password {
            Password::Plain(p) => {
                return if secret::same(given.as_bytes(), p.as_bytes()) {
                    Checked::Right
                } else {
                    Checked::Wrong
                };
            }
            Password::Hash(h) => h.clone(),
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(CHECK_WAIT, self.checks.acquire()).await else {
            return Checked::Busy;
        };
        let _running = self.count_check();
        let right = web::block(move || {
            use argon2::PasswordVerifier;
            argon2::PasswordHash::new(&h).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(given.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if right {
            Checked::Right
        } else {
            Checked::Wrong
        }
    }

    /// Counts a running check until the returned guard drops.
    fn count_check(&self) -> impl Drop + '_ {
        struct Running<'a>(&'a Auth);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                let now = self.0.running.fetch_sub(1, Ordering::SeqCst) - 1;
                if let Some((running, _)) = &self.0.gauges {
                    running.set(now);
                }
            }
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        let peak = self.peak.fetch_max(now, Ordering::SeqCst).max(now);
        if let Some((running, most)) = &self.gauges {
            running.set(now);
            most.set(peak);
        }
        Running(self)
    }

    /// Counts a login attempt of `client` before its password is checked; None (nothing
    /// counted) when the client has no attempt left in the current window. Counting first is
    /// what bounds a burst: parallel posts each take an attempt, or are refused.
    pub fn record_attempt(&self, client: ClientKey) -> Option<Attempt> {
        let mut all = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if all.len() > 10_000 {
            all.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < LOGIN_WINDOW));
        }
        let v = all.entry(client).or_default();
        v.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        if v.len() >= LOGIN_FAILURES {
            return None;
        }
        v.push(now);
        Some(Attempt { client, at: now })
    }

    /// Takes back an attempt that was no wrong guess (the right password, or no check ran).
    pub fn forget_attempt(&self, attempt: Attempt) {
        let mut all = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = all.get_mut(&attempt.client)
            && let Some(i) = v.iter().position(|t| *t == attempt.at)
        {
            v.remove(i);
        }
    }
}

/// One hop of a forwarding header: an address, `[v6]:port` or `v4:port`.
fn hop_addr(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

/// `gitflock-web hash-password`: an argon2id PHC string for `[web] password_hash`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    let salt_bytes = uuid::Uuid::new_v4().into_bytes();
    let salt =
        argon2::password_hash::SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// The `Set-Cookie` value for a session (or, with `None`, one that clears it).
pub fn session_cookie(value: Option<&str>, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            ttl.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// The `Set-Cookie` value carrying a login form's token.
pub fn login_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{LOGIN_COOKIE}={token}; Path=/login; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        LOGIN_FORM_TTL.as_secs()
    )
}

/// The value of cookie `name` in the request, if it holds one.
pub fn cookie_value<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            Password::Plain("correct horse".into()),
            "0123456789abcdef0123".into(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn sessions_are_signed_and_tamper_evident() {
        let a = auth();
        let s = a.new_session();
        let sid = a.check_session(&s).expect("valid");
        assert_eq!(a.csrf_for(&sid).len(), 32);
        let mut forged = s.clone();
        forged.replace_range(3..4, if &s[3..4] == "9" { "8" } else { "9" });
        assert!(a.check_session(&forged).is_none());
        let other = Auth::new(
            Password::Plain("another one".into()),
            "0123456789abcdef0123".into(),
            Duration::from_secs(60),
        );
        assert!(
            other.check_session(&s).is_none(),
            "a new password ends sessions"
        );
        assert!(a.check_session("v1.1.abc.def").is_none());
        assert!(a.check_session("").is_none());
    }

    #[test]
    fn expired_sessions_are_refused() {
        let a = auth();
        let sid = "0".repeat(32);
        let exp = (now_secs() - 1).to_string();
        let v = format!("v1.{exp}.{sid}.{}", a.mac(&["session", &exp, &sid]));
        assert!(a.check_session(&v).is_none());
    }

    #[test]
    fn login_form_tokens_need_their_cookie_and_are_no_sessions() {
        let a = auth();
        let t = a.new_login_token();
        assert!(t.starts_with("l1."));
        assert!(a.check_login_token(Some(&t), &t));
        assert!(!a.check_login_token(None, &t), "no cookie");
        assert!(
            !a.check_login_token(Some(&a.new_login_token()), &t),
            "another form's"
        );
        assert!(!a.check_login_token(Some(""), ""));
        assert!(a.check_session(&t).is_none());
        let s = a.new_session();
        assert!(
            !a.check_login_token(Some(&s), &s),
            "a session is no login token"
        );
        let swapped = format!("l1.{}", s.split_once('.').unwrap().1);
        assert!(!a.check_login_token(Some(&swapped), &swapped));
        let exp = (now_secs() - 1).to_string();
        let id = "0".repeat(32);
        let old = format!("l1.{exp}.{id}.{}", a.mac(&["login", &exp, &id]));
        assert!(!a.check_login_token(Some(&old), &old), "expired");
    }

    #[test]
    fn attempts_are_counted_before_the_check_per_client() {
        let a = auth();
        let key = |s: &str| ClientKey::of(s.parse().unwrap());
        // Started at once (nothing checked yet): only the allowance gets through.
        let started: Vec<_> = (0..LOGIN_FAILURES + 3)
            .filter_map(|_| a.record_attempt(key("10.0.0.1")))
            .collect();
        assert_eq!(started.len(), LOGIN_FAILURES);
        assert!(
            a.record_attempt(key("10.0.0.2")).is_some(),
            "another client"
        );
        // A right password gives its attempt back.
        let mut started = started.into_iter();
        a.forget_attempt(started.next().unwrap());
        let again = a.record_attempt(key("10.0.0.1")).expect("one attempt back");
        drop(again); // a wrong guess stays counted
        assert!(a.record_attempt(key("10.0.0.1")).is_none());
        // An IPv6 client counts by its /64; an IPv4 client seen through IPv6 as itself.
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let a = auth().trusting(vec![
            Cidr::parse("127.0.0.1").unwrap(),
            Cidr::parse("10.1.0.0/16").unwrap(),
        ]);
        let req = |peer: &str, headers: &[(&str, &str)]| {
            let mut r = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            r.to_http_request()
        };
        let client = |peer: &str, h: &[(&str, &str)]| a.client(&req(peer, h)).to_string();
        let xff = "x-forwarded-for";
        assert_eq!(
            client("127.0.0.1:1", &[(xff, "203.0.113.7")]),
            "203.0.113.7"
        );
        assert_eq!(
            client("192.0.2.1:1", &[(xff, "203.0.113.7")]),
            "192.0.2.1",
            "untrusted peer"
        );
        // The client forged a hop; the proxy appended the real one: the nearest untrusted wins.
        assert_eq!(
            client(
                "127.0.0.1:1",
                &[(xff, "198.51.100.1, 203.0.113.7, 10.1.2.3")]
            ),
            "203.0.113.7"
        );
        assert_eq!(
            client("127.0.0.1:1", &[("x-real-ip", "203.0.113.9")]),
            "203.0.113.9"
        );
        assert_eq!(client("127.0.0.1:1", &[(xff, "nonsense")]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1:1", &[(xff, "[2001:db8::1]:443")]),
            "2001:db8::1"
        );
        assert_eq!(client("127.0.0.1:1", &[]), "127.0.0.1");
    }

    #[actix_web::test]
    async fn password_hashes_verify() {
        let h = hash_password("s3cret pass").unwrap();
        assert!(h.starts_with("$argon2"));
        let a = Auth::new(
            Password::Hash(h),
            "0123456789abcdef0123".into(),
            Duration::from_secs(60),
        );
        assert_eq!(a.check_password("s3cret pass".into()).await, Checked::Right);
        assert_eq!(a.check_password("s3cret pasS".into()).await, Checked::Wrong);
        assert_eq!(a.peak.load(Ordering::SeqCst), 1);
        assert_eq!(a.running.load(Ordering::SeqCst), 0);
    }
}
