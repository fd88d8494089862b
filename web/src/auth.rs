//! Who may do what: the login password, signed session cookies, CSRF tokens and the login
//! rate limit ([`Auth`]), the cookies that carry them, and [`Viewer`], who a request is from.
//! The `guard` middleware applies these rules to every route.
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

use crate::config::Password;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use gitflock_core::secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Failed logins allowed per client address per window, before 429.
const LOGIN_FAILURES: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

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
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
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
            failures: Mutex::new(HashMap::new()),
        }
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

    /// Checks the login password (argon2 runs on the blocking pool).
    pub async fn check_password(&self, given: String) -> bool {
        match &self.password {
            Password::Plain(p) => secret::same(given.as_bytes(), p.as_bytes()),
            Password::Hash(h) => {
                let h = h.clone();
                web::block(move || {
                    use argon2::PasswordVerifier;
                    argon2::PasswordHash::new(&h).is_ok_and(|parsed| {
                        argon2::Argon2::default()
                            .verify_password(given.as_bytes(), &parsed)
                            .is_ok()
                    })
                })
                .await
                .unwrap_or(false)
            }
        }
    }

    /// False when `ip` used up its failed attempts in the current window.
    pub fn login_allowed(&self, ip: IpAddr) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if f.len() > 10_000 {
            f.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < LOGIN_WINDOW));
        }
        match f.get_mut(&ip) {
            None => true,
            Some(v) => {
                v.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
                v.len() < LOGIN_FAILURES
            }
        }
    }

    pub fn login_failed(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.entry(ip).or_default().push(Instant::now());
    }
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
    fn logins_are_rate_limited_per_address() {
        let a = auth();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..LOGIN_FAILURES {
            assert!(a.login_allowed(ip));
            a.login_failed(ip);
        }
        assert!(!a.login_allowed(ip));
        assert!(a.login_allowed("10.0.0.2".parse().unwrap()));
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
        assert!(a.check_password("s3cret pass".into()).await);
        assert!(!a.check_password("s3cret pasS".into()).await);
    }
}
