//! The `P:Public` channel protocol: the seed's `<type>:<json>` messages, signed.
//!
//! Types: 0 heartbeat, 1 election request, 2 vote / new-master announcement, 3 other.
//! The JSON is an envelope `{"Msg":{…},"Mac":"<hex>"}`; `Mac` is HMAC-SHA256, keyed by the
//! cluster token, over `<type>:<the exact bytes of Msg>`, so a message cannot be altered or
//! re-typed. Every `Msg` carries the sender's `Name`, its incarnation `Inc` (random per
//! process start), a per-incarnation sequence number `Seq` and its clock `Ts` (ms). A receiver
//! drops a message whose MAC fails, whose `Ts` is more than [`MAX_SKEW`] away from its own
//! clock, or that does not move the sender forward (same incarnation: `Seq` must rise; new
//! incarnation: `Ts` must be newer than anything seen from that name) — so a captured message
//! replayed later admits nobody.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use gitflock_core::clock::now_ms;

/// Messages further than this from the receiver's clock are dropped.
pub const MAX_SKEW_MS: i64 = 30_000;
pub const MAX_SKEW: std::time::Duration = std::time::Duration::from_millis(MAX_SKEW_MS as u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heartbeat = 0,
    ElectionRequest = 1,
    Vote = 2,
    Other = 3,
}

impl Kind {
    fn from_digit(c: u8) -> Option<Kind> {
        match c {
            b'0' => Some(Kind::Heartbeat),
            b'1' => Some(Kind::ElectionRequest),
            b'2' => Some(Kind::Vote),
            b'3' => Some(Kind::Other),
            _ => None,
        }
    }
}

/// The body of every Public message; fields a type does not use stay empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Msg {
    pub name: String,
    pub inc: u64,
    pub seq: u64,
    pub ts: i64,
    /// The advertised gRPC address (heartbeats).
    pub addr: String,
    pub epoch: u64,
    /// master | slave (heartbeats).
    pub role: String,
    /// Tasks running now (heartbeats).
    pub load: u32,
    pub concurrency: u32,
    pub version: String,
    /// What an announcement says: elected, resign (type 2).
    pub event: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    msg: &'a RawValue,
    mac: String,
}

fn mac_of(key: &[u8], kind: Kind, body: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(&[b'0' + kind as u8, b':']);
    m.update(body.as_bytes());
    m
}

/// Signs this node's messages.
pub struct Signer {
    key: Vec<u8>,
    name: String,
    inc: u64,
    seq: AtomicU64,
}

impl Signer {
    pub fn new(token: &str, name: &str) -> Signer {
        Signer {
            key: token.as_bytes().to_vec(),
            name: name.to_string(),
            inc: fastrand::u64(1..),
            seq: AtomicU64::new(0),
        }
    }

    /// `<type>:<json>`, ready to publish.
    pub fn sign(&self, kind: Kind, mut msg: Msg) -> String {
        msg.name = self.name.clone();
        msg.inc = self.inc;
        msg.seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        msg.ts = now_ms();
        let body = serde_json::to_string(&msg).expect("a Msg always serialises");
        let mac = hex::encode(mac_of(&self.key, kind, &body).finalize().into_bytes());
        format!("{}:{{\"Msg\":{body},\"Mac\":\"{mac}\"}}", kind as u8)
    }
}

/// Why a message was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Drop {
    Malformed,
    BadMac,
    Stale,
    Replay,
}

/// Checks messages: signature, clock window, and replays per sender.
pub struct Verifier {
    key: Vec<u8>,
    /// Per sender name: (incarnation, last sequence, newest Ts).
    seen: Mutex<HashMap<String, (u64, u64, i64)>>,
}

impl Verifier {
    pub fn new(token: &str) -> Verifier {
        Verifier {
            key: token.as_bytes().to_vec(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn verify(&self, text: &str) -> Result<(Kind, Msg), Drop> {
        self.verify_at(text, now_ms())
    }

    pub fn verify_at(&self, text: &str, now: i64) -> Result<(Kind, Msg), Drop> {
        let bytes = text.as_bytes();
        if bytes.len() < 3 || bytes[1] != b':' || bytes.len() > 64 * 1024 {
            return Err(Drop::Malformed);
        }
        let kind = Kind::from_digit(bytes[0]).ok_or(Drop::Malformed)?;
        let env: Envelope = serde_json::from_str(&text[2..]).map_err(|_| Drop::Malformed)?;
        let want = hex::decode(&env.mac).map_err(|_| Drop::BadMac)?;
        mac_of(&self.key, kind, env.msg.get())
            .verify_slice(&want)
            .map_err(|_| Drop::BadMac)?;
        let msg: Msg = serde_json::from_str(env.msg.get()).map_err(|_| Drop::Malformed)?;
        if (msg.ts - now).abs() > MAX_SKEW_MS {
            return Err(Drop::Stale);
        }
        let mut seen = self.seen.lock().unwrap();
        if let Some(&(inc, seq, ts)) = seen.get(&msg.name) {
            let forward = if inc == msg.inc {
                msg.seq > seq
            } else {
                msg.ts > ts
            };
            if !forward {
                return Err(Drop::Replay);
            }
        }
        seen.insert(msg.name.clone(), (msg.inc, msg.seq, msg.ts));
        Ok((kind, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> Msg {
        Msg {
            addr: "127.0.0.1:6666".into(),
            epoch: 3,
            role: "slave".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_message_verifies_once() {
        let s = Signer::new("token-0123456789abcdef", "node1");
        let v = Verifier::new("token-0123456789abcdef");
        let text = s.sign(Kind::Heartbeat, heartbeat());
        assert!(text.starts_with("0:{\"Msg\":{\"Name\":\"node1\""), "{text}");
        let (kind, msg) = v.verify(&text).unwrap();
        assert_eq!(kind, Kind::Heartbeat);
        assert_eq!(msg.name, "node1");
        assert_eq!(msg.epoch, 3);
        assert_eq!(
            v.verify(&text),
            Err(Drop::Replay),
            "the same message again is a replay"
        );
        let next = s.sign(Kind::Heartbeat, heartbeat());
        assert!(v.verify(&next).is_ok());
    }

    #[test]
    fn forged_altered_or_retyped_messages_are_dropped() {
        let s = Signer::new("token-0123456789abcdef", "node1");
        let v = Verifier::new("token-0123456789abcdef");
        let other = Signer::new("another-token-000000", "node1");
        assert_eq!(
            v.verify(&other.sign(Kind::Heartbeat, heartbeat())),
            Err(Drop::BadMac)
        );
        let text = s.sign(Kind::Heartbeat, heartbeat());
        assert_eq!(
            v.verify(&text.replace("\"Epoch\":3", "\"Epoch\":9")),
            Err(Drop::BadMac)
        );
        assert_eq!(v.verify(&format!("2{}", &text[1..])), Err(Drop::BadMac));
        assert_eq!(
            v.verify(r#"0:{"Name":"ghost","Host":"x"}"#),
            Err(Drop::Malformed)
        );
        assert_eq!(v.verify("0:"), Err(Drop::Malformed));
        assert_eq!(v.verify("9:{}"), Err(Drop::Malformed));
    }

    #[test]
    fn old_messages_and_old_incarnations_are_dropped() {
        let v = Verifier::new("token-0123456789abcdef");
        let old = Signer::new("token-0123456789abcdef", "node1");
        let captured = old.sign(Kind::Heartbeat, heartbeat());
        // Much later, the captured message is stale.
        assert_eq!(v.verify_at(&captured, now_ms() + 60_000), Err(Drop::Stale));
        // The node restarted (new incarnation) and spoke; the old capture cannot go back.
        let new = Signer::new("token-0123456789abcdef", "node1");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(v.verify(&new.sign(Kind::Heartbeat, heartbeat())).is_ok());
        assert_eq!(v.verify(&captured), Err(Drop::Replay));
    }
}
