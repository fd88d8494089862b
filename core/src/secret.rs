//! Secrets compared without leaking where they differ (the `subtle` crate's constant-time
//! equality). Every token, password and webhook signature check goes through [`same`].

use subtle::ConstantTimeEq;

/// True when `a` and `b` are equal; the time taken depends only on their lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_only_when_equal() {
        assert!(super::same(b"Bearer abc", b"Bearer abc"));
        assert!(!super::same(b"Bearer abc", b"Bearer abd"));
        assert!(!super::same(b"Bearer abc", b"Bearer ab"));
        assert!(super::same(b"", b""));
    }
}
