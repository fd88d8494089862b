//! The task engine: the master's [`dispatch`] loop, the node's [`worker`] (claim, run, report),
//! the [`changes`] hub that feeds WatchTasks streams, and the master's [`retention`] sweep.

pub mod changes;
pub mod dispatch;
pub mod retention;
pub mod worker;
