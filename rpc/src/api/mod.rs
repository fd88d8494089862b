//! The gRPC API every node serves: [`tasks`] (`Tasks`, `Nodes`), [`chain`] (`Chain`) and
//! [`mirrors`] (`Mirrors`), behind the bearer-token check ([`Auth`]); store errors become gRPC
//! statuses in one place ([`status`]).

pub mod chain;
pub mod mirrors;
pub mod status;
pub mod tasks;

pub use status::Auth;

/// A request's page size: 0 asks for the default (100); the store caps it.
pub fn page_size(requested: u32) -> usize {
    if requested == 0 {
        100
    } else {
        requested as usize
    }
}
