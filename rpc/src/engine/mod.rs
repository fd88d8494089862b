//! The task engine: the master's [`dispatch`] loop, the node's [`worker`] (claim, run, report)
//! and the [`changes`] hub that feeds WatchTasks streams.

pub mod changes;
pub mod dispatch;
pub mod worker;
