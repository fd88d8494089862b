//! The cluster as the nodes see it: the status (master, epoch, nodes, counts) and the node list.

use super::{ActionError, call};
use crate::state::AppState;
use gitflock_proto::v1::{Empty, NodeInfo, StatusResponse};

pub async fn status(st: &AppState) -> Result<StatusResponse, ActionError> {
    call(st, "Status", |mut c| async move {
        c.nodes.status(Empty {}).await
    })
    .await
}

pub async fn nodes(st: &AppState) -> Result<Vec<NodeInfo>, ActionError> {
    call(st, "ListNodes", |mut c| async move {
        c.nodes.list_nodes(Empty {}).await
    })
    .await
    .map(|l| l.nodes)
}
