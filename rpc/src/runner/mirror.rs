//! `mirror`: keeps this node's bare mirror of an upstream repository up to date (see
//! [`crate::mirror::fetch`]) and records what it found for `ListMirrors`. Target: the upstream
//! URL. A mirror task is recurring (`[mirror] interval_secs` unless given), its id is the
//! repository's identity (adding a repository twice finds the first task) and it is placed
//! by consistent hashing (pin `#<hash>`): it runs on the ring owner of its repository.

use std::sync::Arc;

use super::{Context, RunFuture, Runner};
use crate::mirror::{MirrorUrl, mirrors_dir};

pub struct Mirror {
    pub ctx: Arc<Context>,
}

impl Mirror {
    fn parse(&self, target: &str) -> Result<MirrorUrl, String> {
        MirrorUrl::parse(target, self.ctx.mirror.allow_file_urls)
    }
}

impl Runner for Mirror {
    fn validate(&self, target: &str) -> Result<(), String> {
        self.parse(target).map(|_| ())
    }

    fn pin(&self, target: &str) -> Option<String> {
        self.parse(target).ok().map(|m| format!("#{}", m.place()))
    }

    fn task_id(&self, target: &str) -> Option<String> {
        self.parse(target).ok().map(|m| m.task_id())
    }

    fn default_name(&self, target: &str) -> Option<String> {
        self.parse(target).ok().map(|m| m.key())
    }

    fn default_interval(&self) -> u64 {
        self.ctx.mirror.interval_secs
    }

    fn run(&self, target: String, cancel: tokio_util::sync::CancellationToken) -> RunFuture {
        let ctx = self.ctx.clone();
        let parsed = self.parse(&target);
        Box::pin(async move {
            let m = parsed?;
            let rel = m.rel_path();
            let dir = mirrors_dir(&ctx.data_dir).join(&rel);
            let url = m.fetch_url.clone();
            let c = cancel.clone();
            let clock = std::time::Instant::now();
            let run =
                tokio::task::spawn_blocking(move || crate::mirror::fetch::sync(&dir, &url, &c))
                    .await
                    .map_err(|e| format!("mirror run panicked: {e}"))?;
            let metrics = &*crate::metrics::METRICS;
            let now = crate::worker::now_ms();
            let id = m.task_id();
            match run {
                Ok(report) => {
                    let label = if report.changed() {
                        "changed"
                    } else {
                        "unchanged"
                    };
                    metrics
                        .mirror_sync_seconds
                        .with_label_values(&[label])
                        .observe(clock.elapsed().as_secs_f64());
                    let mut fields = vec![
                        ("node", ctx.node.clone()),
                        ("path", rel.to_string_lossy().into_owned()),
                        ("head", report.head.clone()),
                        ("refs", report.refs.to_string()),
                        ("last_fetch", now.to_string()),
                        ("last_error", String::new()),
                    ];
                    if let Some(_serving) = ctx.mirror.serve_listen {
                        fields.push((
                            "clone_url",
                            format!(
                                "git://{}/{}",
                                ctx.mirror.serve_advertise,
                                rel.to_string_lossy()
                            ),
                        ));
                    }
                    if report.changed() {
                        fields.push(("last_change", now.to_string()));
                    }
                    ctx.store
                        .mirror_report(&id, true, &fields)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(report.summary())
                }
                Err(e) => {
                    if cancel.is_cancelled() {
                        return Err(e);
                    }
                    metrics
                        .mirror_sync_seconds
                        .with_label_values(&["error"])
                        .observe(clock.elapsed().as_secs_f64());
                    metrics.mirror_failures.inc();
                    let e = crate::redact::redact(&e);
                    let fields = [("last_error", e.clone()), ("last_fail", now.to_string())];
                    let _ = ctx.store.mirror_report(&id, false, &fields).await;
                    Err(e)
                }
            }
        })
    }
}
