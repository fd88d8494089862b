//! The cluster: who is master and who is alive. [`lease`] (the fenced master lease),
//! [`public`] (the signed Public channel protocol), [`membership`] (presence, probes,
//! verdicts, failover of a dead node's work).

pub mod lease;
pub mod membership;
pub mod public;
