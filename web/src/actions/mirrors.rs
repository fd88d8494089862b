//! Mirrors: list them, sync some now, forward a forge's push webhook. A node without the
//! Mirrors service answers `Unimplemented` (the pool does not fail over on it for these calls).

use super::{ActionError, call};
use crate::state::AppState;
use gitflock_proto::v1::{
    ListMirrorsRequest, MirrorList, SyncMirrorsRequest, SyncMirrorsResponse, WebhookRequest,
};
use std::collections::HashMap;

/// At most this many upstream URLs in one sync.
pub const MAX_URLS: usize = 1000;

/// One page of mirrors whose URL contains `text`; `page_size` 0: the node's default.
pub async fn list(
    st: &AppState,
    text: &str,
    page_size: u32,
    page_token: &str,
) -> Result<MirrorList, ActionError> {
    if text.len() > 256 || page_token.len() > 512 {
        return Err(ActionError::Invalid(
            "q (search text) or page too long".into(),
        ));
    }
    call(st, "Mirrors.List", |mut c| {
        let r = ListMirrorsRequest {
            text: text.to_string(),
            page_size,
            page_token: page_token.to_string(),
        };
        async move { c.mirrors.list_mirrors(r).await }
    })
    .await
}

/// Makes the mirrors of `urls` due now.
pub async fn sync(st: &AppState, urls: Vec<String>) -> Result<SyncMirrorsResponse, ActionError> {
    if urls.is_empty() || urls.len() > MAX_URLS {
        return Err(ActionError::Invalid(format!(
            "urls: 1 to {MAX_URLS} upstream URLs"
        )));
    }
    call(st, "Mirrors.Sync", |mut c| {
        let urls = urls.clone();
        async move { c.mirrors.sync_mirrors(SyncMirrorsRequest { urls }).await }
    })
    .await
}

/// Hands a forge's push notification to a node verbatim; the node checks its secret
/// (`Unauthenticated` when it does not match).
pub async fn webhook(
    st: &AppState,
    headers: HashMap<String, String>,
    body: Vec<u8>,
) -> Result<SyncMirrorsResponse, ActionError> {
    call(st, "Mirrors.Webhook", |mut c| {
        let r = WebhookRequest {
            headers: headers.clone(),
            body: body.clone(),
        };
        async move { c.mirrors.webhook(r).await }
    })
    .await
}
