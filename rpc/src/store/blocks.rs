//! Blocks of the log chain: the record of each pushed block, per node (newest first, the last
//! 1000 kept), for ListBlocks and VerifyChain.

use redis::AsyncCommands;

use super::reply::malformed;
use super::{Result, Store};

/// A pushed block, stored as JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockRecord {
    pub node: String,
    pub branch: String,
    /// The commit pushed.
    pub tip: String,
    pub height: u64,
    /// When the push succeeded (ms, the node's chain clock).
    pub pushed_at: i64,
}

/// Block records kept per node.
const KEPT: isize = 1000;

impl Store {
    /// Records a pushed block.
    pub async fn add_block(&self, b: &BlockRecord) -> Result<()> {
        let key = self.keys.blocks(&b.node);
        let json = serde_json::to_string(b).map_err(|_| malformed("block record: not JSON"))?;
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .lpush(&key, json)
            .ltrim(&key, 0, KEPT - 1)
            .sadd(self.keys.block_nodes(), &b.node)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Block records of `node` (or of every node), newest first, up to `limit` per node.
    pub async fn blocks(&self, node: Option<&str>, limit: usize) -> Result<Vec<BlockRecord>> {
        let mut c = self.conn.clone();
        let nodes: Vec<String> = match node {
            Some(n) => vec![n.to_string()],
            None => c.smembers(self.keys.block_nodes()).await?,
        };
        let mut out = Vec::new();
        for n in nodes {
            let items: Vec<String> = c
                .lrange(self.keys.blocks(&n), 0, limit.max(1) as isize - 1)
                .await?;
            for i in items {
                out.push(
                    serde_json::from_str(&i)
                        .map_err(|_| malformed("block record: not a stored block"))?,
                );
            }
        }
        Ok(out)
    }
}
