//! Typed operations on the cluster, the one layer the pages and the API share. Every gRPC call
//! a request makes is here: nothing above this module touches the node pool.
//!
//! An operation checks its input with the node's own rules (`gitflock_core`: task ids and
//! texts, known types, log entry levels, contents and times, node names), makes its call
//! through [`gitflock_client::Pool`] (failing over between nodes) and returns typed results or
//! an [`ActionError`]. It knows nothing of HTTP: the pages (`pages`) turn the results into HTML
//! (field errors on the form, the error page), the API (`api`) into JSON.
//!
//! - [`tasks`]: create (with an error per field), kill or delete many, list, get.
//! - [`chain`]: write a log entry, make a block, read entries, list blocks.
//! - [`mirrors`]: list, sync now, forward a forge's push webhook.
//! - [`cluster`]: the cluster's status and its nodes.

pub mod chain;
pub mod cluster;
pub mod mirrors;
pub mod tasks;

use crate::state::AppState;
use gitflock_client::Client;
use std::future::Future;
use tonic::{Code, Status};

/// Why an operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Refused before any node was asked: what is wrong with the input, for people.
    #[error("{0}")]
    Invalid(String),
    /// A node answered with an error, or no node answered. `message` is what a person reads:
    /// scrubbed of secrets, with a hint when the cluster is out of reach.
    #[error("{message}")]
    Node { code: Code, message: String },
}

impl ActionError {
    /// A node's error as a person reads it (see [`AppState::scrub`]).
    pub fn from_status(st: &AppState, s: &Status) -> ActionError {
        let message = match s.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => format!(
                "no node answered ({}): is the cluster up? The dashboard tries every node in [web] nodes.",
                st.scrub(s.message())
            ),
            Code::Unauthenticated => {
                "the nodes refused the dashboard's token: check [cluster] token".into()
            }
            _ => st.scrub(s.message()),
        };
        ActionError::Node {
            code: s.code(),
            message,
        }
    }

    /// The gRPC code of the failure; a refused input is `InvalidArgument`, as a node says it.
    pub fn code(&self) -> Code {
        match self {
            ActionError::Invalid(_) => Code::InvalidArgument,
            ActionError::Node { code, .. } => *code,
        }
    }
}

/// One call through the pool (see [`gitflock_client::Pool::call`]), its error made readable.
async fn call<T, F, Fut>(st: &AppState, what: &'static str, f: F) -> Result<T, ActionError>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    st.pool
        .call(what, f)
        .await
        .map_err(|s| ActionError::from_status(st, &s))
}
