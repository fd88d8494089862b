//! The gRPC API every node serves: [`tasks`] (`Tasks`, `Nodes`), [`chain`] (`Chain`) and
//! [`mirrors`] (`Mirrors`), behind the bearer-token check ([`Auth`]); store errors become gRPC
//! statuses in one place ([`status`]).

pub mod chain;
pub mod mirrors;
pub mod status;
pub mod tasks;

pub use status::Auth;
