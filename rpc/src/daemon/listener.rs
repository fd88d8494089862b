//! The wake-up listener: subscribes to this node's channel (`P:node:<name>`) and the cluster's
//! `P:Public` channel and turns messages into wake-ups. Pub/sub only ever wakes: the work itself
//! is in durable Redis structures, so a message lost while disconnected costs only the delay
//! until the next poll, and after every (re)subscription everything is woken to re-read state.
//! Public messages are checked (HMAC, replay) by [`Membership::on_public`] before anything
//! acts on them. The node's channel is unsigned (anyone who can PUBLISH can write to it), so
//! none of its messages is obeyed as such: `kill <id>` only makes the worker read its runs'
//! kill flags now, which it also does every second.

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::lease::Lease;
use crate::cluster::membership::Membership;
use crate::cluster::public::Kind;
use crate::engine::worker::Worker;
use crate::store::Store;

pub struct Listener {
    pub store: Store,
    pub node: String,
    pub worker: Arc<Worker>,
    pub wake_dispatch: Arc<Notify>,
    pub lease: Arc<Lease>,
    pub membership: Arc<Membership>,
}

impl Listener {
    fn wake_all(&self) {
        self.worker.wake.notify_one();
        self.wake_dispatch.notify_one();
        self.lease.poke();
    }

    fn route(&self, channel: &str, payload: &str) {
        if channel == self.store.keys().public_channel() {
            let Some((kind, msg)) = self.membership.on_public(payload) else {
                return;
            };
            match kind {
                Kind::Vote => {
                    if msg.event == "elected" {
                        self.lease.observe(&msg.name, msg.epoch);
                    }
                    self.lease.poke();
                }
                Kind::ElectionRequest => self.lease.poke(),
                _ => {}
            }
            // Every sender says the highest epoch it has seen: a master below it steps down.
            self.lease.saw_epoch(msg.epoch);
            return;
        }
        match payload {
            "inbox" => self.worker.wake.notify_one(),
            "due" => self.wake_dispatch.notify_one(),
            p => {
                // A wake-up, not an order: the worker kills only what Redis says to.
                if let Some(id) = p.strip_prefix("kill ") {
                    self.worker.kill(id);
                }
            }
        }
    }

    pub async fn run(self, stop: CancellationToken) {
        let own = self.store.keys().node_channel(&self.node);
        let public = self.store.keys().public_channel();
        let mut delay = Duration::from_millis(100);
        loop {
            // Made before subscribing, so a failover of the Redis primary meanwhile is not missed.
            let mut moved = Box::pin(self.store.primary_moved());
            let subscribed = async {
                let mut ps = self.store.pubsub().await?;
                ps.subscribe(&own).await?;
                ps.subscribe(&public).await?;
                Ok::<_, crate::store::StoreError>(ps)
            };
            let mut ps = tokio::select! {
                _ = stop.cancelled() => return,
                r = subscribed => match r {
                    Ok(ps) => ps,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to wake-ups; polling meanwhile");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            delay = Duration::from_millis(100);
            self.wake_all();
            let mut messages = ps.on_message();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = &mut moved => {
                        tracing::info!("the redis primary moved; resubscribing there");
                        break;
                    }
                    m = messages.next() => match m {
                        Some(m) => {
                            let payload: String = m.get_payload().unwrap_or_default();
                            self.route(m.get_channel_name(), &payload);
                        }
                        None => {
                            tracing::warn!("wake-up subscription lost; resubscribing");
                            break;
                        }
                    }
                }
            }
        }
    }
}
