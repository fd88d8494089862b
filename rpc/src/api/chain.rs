//! The gRPC `Chain` service: write, read, verify this node's log chain; make and list blocks
//! across the cluster. Validation happens here, before anything reaches the chain writer, so a
//! bad entry is INVALID_ARGUMENT and nothing of its request is written (a `WriteLogs` stream is
//! written whole or not at all). Since a stream is held in memory until its end, each is capped
//! in bytes and a node takes a few at once.

use super::status::store_status;
use gitflock_proto::v1::chain_server::Chain as ChainRpc;
use gitflock_proto::v1::{
    Block, BlockList, ListBlocksRequest, LogEntry, MakeBlockRequest, ReadLogsRequest, StoredEntry,
    Task, VerifyRequest, VerifyResponse, WriteLogResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::chain::{BlockCheck, Chain, ChainError};
use crate::runner::block::{PinRefused, pinned_node};
use crate::store::{BlockRecord, Store};
use gitflock_core::config::check_node_name;
use gitflock_core::log_entry::{self as entry, Entry};

/// Most entries in one WriteLogs stream (it is written as one unit).
const MAX_STREAM_ENTRIES: usize = 1_000_000;
/// Most bytes one WriteLogs stream may hold: its entries' text, plus [`ENTRY_OVERHEAD`] each.
pub const MAX_STREAM_BYTES: usize = 32 << 20;
/// What an entry costs in memory beyond its text.
const ENTRY_OVERHEAD: usize = 64;
/// WriteLogs streams a node reads at once (so at most this × [`MAX_STREAM_BYTES`] is held); a
/// stream beyond them waits for a slot, unread, up to [`STREAM_SLOT_WAIT`].
pub const MAX_WRITE_STREAMS: usize = 8;
static WRITE_STREAMS: Semaphore = Semaphore::const_new(MAX_WRITE_STREAMS);
const STREAM_SLOT_WAIT: Duration = Duration::from_secs(10);

pub struct ChainService {
    pub chain: Arc<Chain>,
    pub store: Store,
    pub node: String,
    pub remote: Option<String>,
    /// Fires when the node stops: following ReadLogs streams end with UNAVAILABLE.
    pub closing: tokio_util::sync::CancellationToken,
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

/// A refused node placement: an unknown node is a bad argument, a dead one a precondition.
pub(super) fn pin_status(e: PinRefused) -> Status {
    match e {
        PinRefused::Unknown(m) => Status::invalid_argument(m),
        PinRefused::Dead(m) => Status::failed_precondition(m),
        PinRefused::Store(e) => store_status(e),
    }
}

fn chain_status(e: ChainError) -> Status {
    match e {
        ChainError::Invalid(m) => Status::invalid_argument(m),
        ChainError::Io(m) => Status::internal(m),
    }
}

/// Checks one entry; `create_at` empty becomes 0 (the writer stamps it with now). A given
/// `create_at` may not be ahead of `chain`'s clock by more than `[chain] max_future_skew_secs`.
pub fn validate(e: &LogEntry, chain: &Chain) -> Result<Entry, String> {
    let level = entry::check_level(if e.level.is_empty() { "info" } else { &e.level })?;
    entry::check_content(&e.content)?;
    let create_at = if e.create_at.trim().is_empty() {
        0
    } else {
        let at = entry::parse_time(&e.create_at)?;
        chain.check_time(at)?;
        at
    };
    Ok(Entry {
        level,
        content: e.content.clone(),
        create_at,
    })
}

fn stored(s: crate::chain::Stored, node: &str) -> StoredEntry {
    StoredEntry {
        height: s.height,
        commit: s.commit,
        create_at: entry::format_time(s.entry.create_at),
        level: s.entry.level,
        content: s.entry.content,
        node: node.to_string(),
    }
}

fn block_of(b: BlockRecord) -> Block {
    Block {
        node: b.node,
        branch: b.branch,
        tip: b.tip,
        height: b.height,
        pushed_at: b.pushed_at,
    }
}

#[tonic::async_trait]
impl ChainRpc for ChainService {
    async fn write_log(
        &self,
        req: Request<LogEntry>,
    ) -> Result<Response<WriteLogResponse>, Status> {
        let e = validate(req.get_ref(), &self.chain).map_err(invalid)?;
        let (first, last) = self.chain.append(vec![e]).await.map_err(chain_status)?;
        Ok(Response::new(WriteLogResponse {
            first_height: first,
            last_height: last,
            count: 1,
        }))
    }

    async fn write_logs(
        &self,
        req: Request<Streaming<LogEntry>>,
    ) -> Result<Response<WriteLogResponse>, Status> {
        let _slot = tokio::time::timeout(STREAM_SLOT_WAIT, WRITE_STREAMS.acquire())
            .await
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "{MAX_WRITE_STREAMS} WriteLogs streams are being written on this node; try again"
                ))
            })?
            .map_err(|_| Status::unavailable("node shutting down"))?;
        let mut stream = req.into_inner();
        let mut entries = Vec::new();
        let mut last_at = 0;
        let mut bytes = 0usize;
        while let Some(e) = stream.message().await? {
            let n = entries.len();
            if n >= MAX_STREAM_ENTRIES {
                return Err(invalid(format!(
                    "more than {MAX_STREAM_ENTRIES} entries in one stream"
                )));
            }
            bytes += e.content.len() + e.level.len() + ENTRY_OVERHEAD;
            if bytes > MAX_STREAM_BYTES {
                return Err(invalid(format!(
                    "entry {n}: the stream holds more than {} MiB; split it into several streams",
                    MAX_STREAM_BYTES >> 20
                )));
            }
            let e =
                validate(&e, &self.chain).map_err(|why| invalid(format!("entry {n}: {why}")))?;
            if e.create_at != 0 {
                if e.create_at < last_at {
                    return Err(invalid(format!("entry {n}: create_at goes back in time")));
                }
                last_at = e.create_at;
            }
            entries.push(e);
        }
        if entries.is_empty() {
            return Err(invalid("no entries"));
        }
        let count = entries.len() as u64;
        let (first, last) = self.chain.append(entries).await.map_err(chain_status)?;
        Ok(Response::new(WriteLogResponse {
            first_height: first,
            last_height: last,
            count,
        }))
    }

    type ReadLogsStream = ReceiverStream<Result<StoredEntry, Status>>;

    async fn read_logs(
        &self,
        req: Request<ReadLogsRequest>,
    ) -> Result<Response<Self::ReadLogsStream>, Status> {
        let r = req.into_inner();
        let mut from = if r.tail > 0 {
            self.chain.tip().height.saturating_sub(r.tail - 1).max(1)
        } else if r.since > 0 {
            r.since
        } else if !r.since_time.is_empty() {
            let at = entry::parse_time(&r.since_time).map_err(invalid)?;
            self.chain.height_at(at).await.map_err(chain_status)?
        } else {
            1
        };
        let limit = match (r.limit, r.tail) {
            (0, 0) => u64::MAX,
            (0, t) => t,
            (l, _) => l,
        };
        let chain = self.chain.clone();
        let node = self.node.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            let mut tip = chain.subscribe();
            let mut sent = 0u64;
            loop {
                let batch = match chain.read(from, 1000.min((limit - sent) as usize)).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(chain_status(e))).await;
                        return;
                    }
                };
                for s in batch {
                    from = s.height + 1;
                    sent += 1;
                    if tx.send(Ok(stored(s, &node))).await.is_err() {
                        return;
                    }
                    if sent >= limit {
                        return;
                    }
                }
                if from <= chain.tip().height {
                    continue;
                }
                if !r.follow {
                    return;
                }
                tokio::select! {
                    changed = tip.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = closing.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("node shutting down"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn make_block(&self, req: Request<MakeBlockRequest>) -> Result<Response<Task>, Status> {
        let node = req.into_inner().node;
        if !node.is_empty() {
            check_node_name(&node).map_err(|e| invalid(format!("node {e}")))?;
        }
        if self.remote.is_none() {
            return Err(Status::failed_precondition(
                "no [chain] remote is configured: blocks have nowhere to go",
            ));
        }
        let block = crate::runner::block::one_off(&node);
        pinned_node(&self.store, &block.placement)
            .await
            .map_err(pin_status)?;
        let created = self.store.create(&block).await.map_err(store_status)?;
        let task = self
            .store
            .get_task(&created.id, true)
            .await
            .map_err(store_status)?;
        task.map(Response::new)
            .ok_or_else(|| Status::internal("the block task vanished"))
    }

    async fn list_blocks(
        &self,
        req: Request<ListBlocksRequest>,
    ) -> Result<Response<BlockList>, Status> {
        let r = req.into_inner();
        if !r.node.is_empty() {
            check_node_name(&r.node).map_err(|e| invalid(format!("node {e}")))?;
        }
        let limit = if r.limit == 0 {
            100
        } else {
            r.limit.min(1000) as usize
        };
        let node = (!r.node.is_empty()).then_some(r.node.as_str());
        let mut blocks: Vec<Block> = self
            .store
            .blocks(node, limit)
            .await
            .map_err(store_status)?
            .into_iter()
            .map(block_of)
            .collect();
        blocks.sort_by_key(|b| std::cmp::Reverse(b.pushed_at));
        Ok(Response::new(BlockList { blocks }))
    }

    async fn verify_chain(
        &self,
        _: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let records = self
            .store
            .blocks(Some(&self.node), 1000)
            .await
            .map_err(store_status)?;
        let blocks = records
            .into_iter()
            .map(|b| BlockCheck {
                branch: b.branch,
                tip: b.tip,
                height: b.height,
            })
            .collect();
        let v = self
            .chain
            .verify(blocks, self.remote.clone())
            .await
            .map_err(chain_status)?;
        Ok(Response::new(VerifyResponse {
            ok: v.ok,
            node: self.node.clone(),
            height: v.height,
            blocks_checked: v.blocks_checked,
            has_bad_height: v.bad_height.is_some(),
            bad_height: v.bad_height.unwrap_or(0),
            bad_commit: v.bad_commit,
            problem: v.problem,
        }))
    }
}
