//! The gRPC `Mirrors` service: mirror status (ListMirrors), sync-now requests (SyncMirrors)
//! and forge push webhooks passed on by whatever received them over HTTP (Webhook).
//!
//! A forge's signature covers the body only, so a captured push can be delivered again and
//! again: a webhook's sync comes at most once per mirror per [`WEBHOOK_WINDOW`] (a push within
//! the window is folded into a sync at its end), and never cuts a failing mirror's back-off.
//! An operator's SyncMirrors syncs at once.

use super::status::store_status;
use gitflock_proto::v1::mirrors_server::Mirrors;
use gitflock_proto::v1::{
    ListMirrorsRequest, Mirror, MirrorList, SyncMirrorsRequest, SyncMirrorsResponse, TaskState,
    UpstreamList, WebhookRequest,
};
use tonic::{Request, Response, Status};

use crate::mirror::MirrorUrl;
use crate::mirror::webhook::{self, HookError};
use crate::store::{Store, SyncNow, TaskQuery};
use gitflock_core::config::MirrorConfig;
use gitflock_core::task;

pub struct MirrorService {
    pub store: Store,
    pub config: MirrorConfig,
}

const MAX_SYNC_URLS: usize = 1000;

/// A webhook syncs a mirror at most once per this long.
pub const WEBHOOK_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

impl MirrorService {
    /// Asks the mirrors of `urls` to sync (`window`: a webhook's, see the module doc).
    async fn sync_urls(
        &self,
        urls: &[String],
        window: Option<std::time::Duration>,
    ) -> Result<SyncMirrorsResponse, Status> {
        let mut out = SyncMirrorsResponse::default();
        let mut seen = std::collections::HashSet::new();
        let mut asked: Vec<(String, &String)> = Vec::new();
        for u in urls {
            match MirrorUrl::parse(u, self.config.allow_file_urls) {
                Ok(m) => {
                    let id = m.task_id();
                    if seen.insert(id.clone()) {
                        asked.push((id, u));
                    }
                }
                Err(_) => out
                    .unknown
                    .push(gitflock_core::redact::redact(task::shorten(u, 256))),
            }
        }
        let ids: Vec<String> = asked.iter().map(|(id, _)| id.clone()).collect();
        // One script for the whole batch: a bulk sync starts every run at once.
        let results = self
            .store
            .sync_now(&ids, window)
            .await
            .map_err(store_status)?;
        let mut backing_off = 0;
        for ((id, u), r) in asked.into_iter().zip(results) {
            match r {
                SyncNow::Missing => out
                    .unknown
                    .push(gitflock_core::redact::redact(task::shorten(u, 256))),
                // Known, and left to its back-off: neither synced nor unknown.
                SyncNow::BackingOff => backing_off += 1,
                _ => out.synced.push(id),
            }
        }
        if backing_off > 0 {
            tracing::info!(
                mirrors = backing_off,
                "webhook: failing mirrors keep their back-off"
            );
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl Mirrors for MirrorService {
    async fn list_mirrors(
        &self,
        req: Request<ListMirrorsRequest>,
    ) -> Result<Response<MirrorList>, Status> {
        let r = req.into_inner();
        task::check_text("text", &r.text, 256, true).map_err(Status::invalid_argument)?;
        if r.page_size > 1000 {
            return Err(Status::invalid_argument("page_size: at most 1000"));
        }
        let page = self
            .store
            .list_tasks(&TaskQuery {
                states: Vec::new(),
                kind: "mirror".into(),
                text: r.text,
                page_size: super::page_size(r.page_size),
                page_token: r.page_token,
                with_results: false,
            })
            .await
            .map_err(store_status)?;
        let ids: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
        let statuses = self
            .store
            .mirror_statuses(&ids)
            .await
            .map_err(store_status)?;
        let mirrors = page
            .tasks
            .into_iter()
            .zip(statuses)
            .map(|(t, st)| {
                let state = t.state();
                let mut m = Mirror {
                    url: t.target.clone(),
                    node: st.node,
                    path: st.path,
                    clone_url: st.clone_url,
                    head: st.head,
                    last_fetch: st.last_fetch,
                    last_change: st.last_change,
                    last_error: st.last_error,
                    task_id: t.id.clone(),
                    interval_secs: t.interval_secs,
                    refs: st.refs,
                    failures: st.failures,
                    next_run: if state == TaskState::Waiting {
                        t.due_at
                    } else {
                        0
                    },
                    ..Default::default()
                };
                m.set_state(state);
                m
            })
            .collect();
        let ls = self.store.list_status().await.map_err(store_status)?;
        let list = self.config.list_url.as_ref().map(|u| UpstreamList {
            url: gitflock_core::redact::redact(u),
            last_sync: ls.last_sync,
            commit: ls.commit,
            entries: ls.entries,
            last_error: ls.last_error,
        });
        Ok(Response::new(MirrorList {
            mirrors,
            next_page_token: page.next_page_token,
            total: page.total,
            list,
        }))
    }

    async fn sync_mirrors(
        &self,
        req: Request<SyncMirrorsRequest>,
    ) -> Result<Response<SyncMirrorsResponse>, Status> {
        let r = req.into_inner();
        if r.urls.is_empty() {
            return Err(Status::invalid_argument("urls is empty"));
        }
        if r.urls.len() > MAX_SYNC_URLS {
            return Err(Status::invalid_argument(format!(
                "{} urls; at most {MAX_SYNC_URLS} per call",
                r.urls.len()
            )));
        }
        Ok(Response::new(self.sync_urls(&r.urls, None).await?))
    }

    async fn webhook(
        &self,
        req: Request<WebhookRequest>,
    ) -> Result<Response<SyncMirrorsResponse>, Status> {
        let r = req.into_inner();
        let counter = &crate::metrics::METRICS.webhooks;
        let headers: std::collections::HashMap<String, String> = r
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        if r.body.len() > webhook::MAX_BODY_BYTES {
            counter.with_label_values(&["invalid"]).inc();
            return Err(Status::invalid_argument("payload over 1 MiB"));
        }
        if let Err(HookError::Unauthenticated(m)) =
            webhook::verify(&headers, &r.body, &self.config.webhook_secret)
        {
            counter.with_label_values(&["refused"]).inc();
            tracing::warn!(why = %m, "webhook refused");
            return Err(Status::unauthenticated(m));
        }
        let urls = match webhook::urls(&r.body) {
            Ok(u) => u,
            Err(HookError::Invalid(m) | HookError::Unauthenticated(m)) => {
                counter.with_label_values(&["invalid"]).inc();
                return Err(Status::invalid_argument(m));
            }
        };
        let out = self.sync_urls(&urls, Some(WEBHOOK_WINDOW)).await?;
        counter
            .with_label_values(&[if out.synced.is_empty() {
                "unknown"
            } else {
                "synced"
            }])
            .inc();
        tracing::info!(
            synced = out.synced.len(),
            unknown = out.unknown.len(),
            "webhook"
        );
        Ok(Response::new(out))
    }
}
