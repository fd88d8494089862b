//! How a node stops: one signal, then three phases in a fixed order, each a cancellation
//! token that the loops of that phase wait on.
//!
//! 1. [`Shutdown::leaving`]: the lease loop stops (the daemon then resigns, announced on the
//!    Public channel so another node takes over at once), and the worker stops claiming.
//! 2. [`Shutdown::drained`]: fired once running tasks have finished or been handed back; the
//!    reporter records the last results and every background loop (presence, membership,
//!    dispatch, listener, mirror serving, metrics) ends.
//! 3. [`Shutdown::closed`]: open WatchTasks / ReadLogs streams end with UNAVAILABLE (clients
//!    move to another node) and the gRPC server stops.

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Shutdown {
    /// SIGTERM or SIGINT arrived (or the embedding code asked to stop).
    pub requested: CancellationToken,
    pub leaving: CancellationToken,
    pub drained: CancellationToken,
    pub closed: CancellationToken,
}

impl Shutdown {
    /// A shutdown that is requested by SIGTERM or SIGINT.
    pub fn on_signals() -> Shutdown {
        let s = Shutdown::default();
        let requested = s.requested.clone();
        tokio::spawn(async move {
            gitflock_core::shutdown::signal().await;
            tracing::info!("shutting down");
            requested.cancel();
        });
        s
    }
}
