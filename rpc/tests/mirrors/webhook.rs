//! The push webhook and explicit syncs.

use super::*;
use gitflock_proto::v1::{SyncMirrorsRequest, WebhookRequest};
use std::collections::HashMap;

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_webhook_syncs_at_once_and_packs_stay_bounded() {
    let up = Upstream::start();
    up.create("svc");
    let url = up.url("svc");
    let secret = "hook-secret-123";
    let cluster = Cluster::start_with(1, &[("GITFLOCK_MIRROR_WEBHOOK_SECRET", secret)]).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &url, 3600).await;
    let m = wait_mirror(&c, &id, "the first clone", Duration::from_secs(30), |m| {
        !m.head.is_empty()
    })
    .await;

    // A forged hook is refused.
    let body =
        serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": url}}).to_string();
    let e = c
        .mirrors
        .webhook(WebhookRequest {
            headers: HashMap::from([(
                "x-hub-signature-256".into(),
                sign("wrong", body.as_bytes()),
            )]),
            body: body.clone().into_bytes(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    // A genuine one: the owner syncs at once (the interval is an hour).
    let mut lags = Vec::new();
    for i in 0..3 {
        let sha = up.commit("svc", "main", &format!("hooked {i}"));
        let t0 = Instant::now();
        let r = c
            .mirrors
            .webhook(WebhookRequest {
                headers: HashMap::from([
                    ("X-Hub-Signature-256".into(), sign(secret, body.as_bytes())),
                    ("x-github-event".into(), "push".into()),
                ]),
                body: body.clone().into_bytes(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.synced, vec![id.clone()]);
        wait_mirror(&c, &id, "the hooked sync", Duration::from_secs(10), |m| {
            m.head == format!("main {sha}")
        })
        .await;
        lags.push(t0.elapsed());
    }
    eprintln!("webhook → mirror lag: {lags:?}");
    assert!(lags.iter().all(|l| *l < Duration::from_secs(5)), "{lags:?}");

    // Many fetches: packs are folded, never more than the limit + 1.
    for i in 0..20 {
        let sha = up.commit("svc", "main", &format!("pack {i}"));
        c.mirrors
            .sync_mirrors(SyncMirrorsRequest {
                urls: vec![url.clone()],
            })
            .await
            .unwrap();
        wait_mirror(&c, &id, "the sync", Duration::from_secs(10), |m| {
            m.head == format!("main {sha}")
        })
        .await;
    }
    let dir = cluster.nodes[0].data_dir().join("mirrors").join(&m.path);
    let packs = gitflock_node::mirror::fetch::pack_count(&dir);
    assert!(
        packs <= gitflock_node::mirror::fetch::REPACK_PACKS + 1,
        "{packs} packs"
    );
    assert_eq!(ls_remote(&m.clone_url), ls_remote(&url));
    // Unknown repositories are named back, masked.
    let r = c
        .mirrors
        .sync_mirrors(SyncMirrorsRequest {
            urls: vec!["https://u:pw@example.org/none.git".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.unknown,
        vec!["https://***@example.org/none.git".to_string()]
    );
}
