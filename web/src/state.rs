//! [`AppState`]: what every handler shares, one per process — the node pool, the login and
//! session rules, the metrics, the live hub — and [`AppState::scrub`], the last filter on
//! any text a node sends back before a person sees it.

use crate::auth::Auth;
use crate::config::WebConfig;
use crate::live::Hub;
use crate::metrics::Metrics;
use gitflock_client::Pool;
use std::sync::Arc;

pub struct AppState {
    /// Lazy gRPC channels to every configured node. Only `actions` (the request
    /// path) and [`crate::live`] (the followers) make calls through it.
    pub pool: Arc<Pool>,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
    /// Scrubbed from every message a node sends back before it is shown (defence in depth:
    /// the nodes never echo the token, but a page must not be the place where it leaks).
    token: String,
}

impl AppState {
    /// Builds the state and starts the live followers (needs a running tokio runtime).
    pub fn new(cfg: &WebConfig) -> Result<AppState, String> {
        let metrics = Arc::new(Metrics::new());
        let pool = Arc::new(
            Pool::new(&cfg.nodes, &cfg.token, &cfg.tls, metrics.clone()).map_err(|e| e.0)?,
        );
        let hub = Hub::start(pool.clone(), metrics.clone());
        Ok(AppState {
            pool,
            auth: Auth::new(cfg.password.clone(), cfg.token.clone(), cfg.session)
                .trusting(cfg.trusted_proxies.clone())
                .observed_by(
                    metrics.password_checks.clone(),
                    metrics.password_checks_peak.clone(),
                ),
            metrics,
            hub,
            token: cfg.token.clone(),
        })
    }

    /// A node's message, safe to show: URL credentials and the cluster token masked.
    pub fn scrub(&self, text: &str) -> String {
        let t = gitflock_core::redact::redact(text);
        if !self.token.is_empty() && t.contains(&self.token) {
            t.replace(&self.token, "***")
        } else {
            t
        }
    }
}
