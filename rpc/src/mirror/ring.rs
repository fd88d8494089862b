//! Consistent hashing of repository identities over nodes, with virtual nodes.
//!
//! Each node owns [`VNODES`] points on a 32-bit ring; an identity belongs to the node of the
//! first point at or after its hash (wrapping). Removing a node moves only its repositories;
//! adding one takes about 1/N of them. The master builds the ring from its membership and
//! hands it to the DISPATCH script as (point, node) pairs, which does the lookup in Redis.
//! 32-bit values stay exact in Lua's doubles.

pub use gitflock_core::mirror_url::hash32;

pub const VNODES: u32 = 64;

#[derive(Clone, Debug, Default)]
pub struct Ring {
    /// Sorted by point.
    points: Vec<(u32, String)>,
}

impl Ring {
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Ring {
        let mut points: Vec<(u32, String)> = nodes
            .iter()
            .flat_map(|n| {
                let n = n.as_ref();
                (0..VNODES).map(move |i| (hash32(&format!("{n}#{i}")), n.to_string()))
            })
            .collect();
        points.sort();
        points.dedup_by_key(|p| p.0);
        Ring { points }
    }

    pub fn owner(&self, place: u32) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|(p, _)| *p < place);
        Some(&self.points[i % self.points.len()].1)
    }

    pub fn points(&self) -> &[(u32, String)] {
        &self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn owners(r: &Ring, keys: &[u32]) -> Vec<String> {
        keys.iter()
            .map(|k| r.owner(*k).unwrap().to_string())
            .collect()
    }

    #[test]
    fn spreads_evenly_and_moves_little() {
        let keys: Vec<u32> = (0..3000).map(|i| hash32(&format!("h/repo{i}"))).collect();
        let three = Ring::new(&["n1", "n2", "n3"]);
        let a = owners(&three, &keys);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for o in &a {
            *count.entry(o).or_default() += 1;
        }
        for (n, c) in &count {
            assert!((600..=1400).contains(c), "{n} has {c} of 3000");
        }
        // A fourth node takes about a quarter, only from the others.
        let four = Ring::new(&["n1", "n2", "n3", "n4"]);
        let b = owners(&four, &keys);
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!((400..=1200).contains(&moved), "moved {moved}");
        assert!(a.iter().zip(&b).all(|(x, y)| x == y || y == "n4"));
        // Removing a node moves only its repositories.
        let two = Ring::new(&["n1", "n3"]);
        let c = owners(&two, &keys);
        assert!(a.iter().zip(&c).all(|(x, y)| x == y || x == "n2"));
        assert!(Ring::new::<&str>(&[]).owner(5).is_none());
    }
}
