//! Reading what Redis answers. A script's reply must have the shape its doc gives, or the
//! call fails with [`StoreError::Reply`]; a hash read from Redis may lack an optional field
//! (it defaults) but a field that is there must parse. Error texts name the reply and the
//! field, never a value (values may hold URLs with credentials).

use redis::Value;
use std::collections::HashMap;
use std::str::FromStr;

use super::{Result, StoreError};

pub(super) fn malformed(what: impl Into<String>) -> StoreError {
    StoreError::Reply(what.into())
}

/// Text of a string reply (bulk or simple); `None` for anything else.
fn as_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// An integer reply.
pub(super) fn int(reply: &str, v: Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(n),
        _ => Err(malformed(format!("{reply}: expected an integer"))),
    }
}

/// A string reply.
pub(super) fn text(reply: &str, v: Value) -> Result<String> {
    as_text(v).ok_or_else(|| malformed(format!("{reply}: expected text")))
}

/// An array reply.
pub(super) fn array(reply: &str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        _ => Err(malformed(format!("{reply}: expected an array"))),
    }
}

/// The items of an array reply, taken in order, each by the name the script's doc gives it.
pub(super) struct Items {
    reply: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Items {
    /// An array of any length (see [`Items::left`]).
    pub fn of(reply: &'static str, v: Value) -> Result<Items> {
        Ok(Items {
            reply,
            items: array(reply, v)?.into_iter(),
        })
    }

    /// An array of exactly `len` items.
    pub fn exactly(reply: &'static str, v: Value, len: usize) -> Result<Items> {
        let items = Items::of(reply, v)?;
        if items.left() != len {
            return Err(malformed(format!(
                "{reply}: {} items, expected {len}",
                items.left()
            )));
        }
        Ok(items)
    }

    /// How many items are not read yet.
    pub fn left(&self) -> usize {
        self.items.len()
    }

    fn next(&mut self, name: &str) -> Result<Value> {
        self.items
            .next()
            .ok_or_else(|| malformed(format!("{}: no {name}", self.reply)))
    }

    pub fn int(&mut self, name: &str) -> Result<i64> {
        let v = self.next(name)?;
        int(&format!("{} {name}", self.reply), v)
    }

    pub fn text(&mut self, name: &str) -> Result<String> {
        let v = self.next(name)?;
        text(&format!("{} {name}", self.reply), v)
    }

    /// Text that must parse as `T` (numbers scripts relay as decimal text).
    pub fn parsed<T: FromStr>(&mut self, name: &str) -> Result<T> {
        self.text(name)?
            .parse()
            .map_err(|_| malformed(format!("{} {name}: not a number", self.reply)))
    }

    /// Like [`Items::parsed`], but a nil (a field missing from the hash the script read)
    /// is `default`.
    pub fn parsed_or<T: FromStr>(&mut self, name: &str, default: T) -> Result<T> {
        match self.next(name)? {
            Value::Nil => Ok(default),
            v => text(&format!("{} {name}", self.reply), v)?
                .parse()
                .map_err(|_| malformed(format!("{} {name}: not a number", self.reply))),
        }
    }
}

/// The fields of a hash read with HGETALL.
pub(super) struct Fields<'a> {
    what: &'static str,
    map: &'a HashMap<String, String>,
}

impl<'a> Fields<'a> {
    pub fn of(what: &'static str, map: &'a HashMap<String, String>) -> Fields<'a> {
        Fields { what, map }
    }

    /// A text field ('' when missing).
    pub fn text(&self, name: &str) -> String {
        self.map.get(name).cloned().unwrap_or_default()
    }

    /// A number field (`T::default()` when missing); one that is there must parse.
    pub fn number<T: FromStr + Default>(&self, name: &str) -> Result<T> {
        match self.map.get(name) {
            None => Ok(T::default()),
            Some(v) => v
                .parse()
                .map_err(|_| malformed(format!("{} field {name}: not a number", self.what))),
        }
    }

    /// A flag field: "1" is true; missing is false.
    pub fn flag(&self, name: &str) -> bool {
        self.map.get(name).map(String::as_str) == Some("1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_error() {
        assert!(Items::exactly("R", Value::Array(vec![Value::Int(1)]), 2).is_err());
        assert!(Items::exactly("R", Value::Int(1), 1).is_err());
        let mut it = Items::exactly("R", Value::Array(vec![bulk("x"), Value::Nil]), 2).unwrap();
        assert!(it.parsed::<u64>("n").is_err());
        assert_eq!(it.parsed_or::<u64>("m", 7).unwrap(), 7);
        assert!(int("R", bulk("1")).is_err());
    }

    #[test]
    fn a_hash_may_lack_a_field_but_not_hold_garbage() {
        let map: HashMap<String, String> = [
            ("a".to_string(), "12".to_string()),
            ("b".into(), "x".into()),
        ]
        .into();
        let f = Fields::of("H", &map);
        assert_eq!(f.number::<u32>("a").unwrap(), 12);
        assert_eq!(f.number::<u32>("missing").unwrap(), 0);
        assert!(f.number::<u32>("b").is_err());
        let e = f.number::<u32>("b").unwrap_err().to_string();
        assert!(!e.contains('x'), "the value leaked: {e}");
    }
}
