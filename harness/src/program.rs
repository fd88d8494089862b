//! Where installed programs are, for `gitflock dev`: beside the running executable (cargo and
//! the release archives put gitflock's binaries together), else on PATH. Tests use
//! [`crate::binary`], which builds a stale workspace binary first.

use std::path::PathBuf;

/// `name` in a directory of PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// `name` beside the running executable, else on PATH.
pub fn installed(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .map(|me| me.with_file_name(name))
        .filter(|p| p.is_file())
        .or_else(|| on_path(name))
}
