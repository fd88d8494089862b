//! `GET /events`: the live stream ([`crate::live`]) as server-sent events — `hello` first,
//! then `task` and `cluster` events, and `resync` when this subscriber fell behind.

use crate::state::AppState;
use actix_web::web;
use actix_web_lab::sse;
use futures_util::StreamExt;
use std::convert::Infallible;
use std::time::Duration;

/// Lowers the subscriber gauge when the browser goes away and its stream is dropped.
struct Leave(prometheus::IntGauge);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn events(st: web::Data<AppState>) -> impl actix_web::Responder {
    let rx = st.hub.subscribe();
    let gauge = st.metrics.sse_clients.clone();
    gauge.inc();
    let leave = Leave(gauge);
    let hello = futures_util::stream::once(async {
        Ok::<_, Infallible>(sse::Event::Data(sse::Data::new("{}").event("hello")))
    });
    let live = tokio_stream::wrappers::BroadcastStream::new(rx).map(move |item| {
        let _keep = &leave;
        Ok::<_, Infallible>(match item {
            Ok(ev) => sse::Event::Data(sse::Data::new(ev.data.to_string()).event(ev.name)),
            Err(_) => sse::Event::Data(sse::Data::new("{}").event("resync")),
        })
    });
    sse::Sse::from_stream(hello.chain(live)).with_keep_alive(Duration::from_secs(15))
}
