//! Log entries dated far in the future: the node refuses them whichever dashboard path they
//! come by (the chain page's form, the JSON API, the seed's `POST /write`), and the dashboard
//! answers 400 with the node's reason. Entries never go back in time, so one accepted would
//! stamp every later entry with its date.

use crate::common::*;
use serde_json::json;

const DOOMSDAY: &str = "9999-12-31T23:59:59Z";
// (Without the apostrophe, which a page escapes.)
const WHY: &str = "ahead of this node";

#[tokio::test]
async fn far_future_entries_are_refused_on_every_dashboard_path() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let fields = [
        ("create_at", DOOMSDAY),
        ("level", "info"),
        ("content", "poison"),
    ];
    let r = user.post_form("/write", &fields).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains(WHY), "{body}");
    let r = user.post_form("/chain/write", &fields).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains(WHY), "{body}");
    let api = Http::bearer(&c.web);
    let (s, v) = api
        .post_json(
            "/api/v1/chain/logs",
            json!({"content": "poison", "create_at": DOOMSDAY}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains(WHY), "{v}");

    // Nothing of it was written, and an entry stamped "now" is dated now.
    let r = user.post_form("/write", &[("content", "after")]).await;
    assert_eq!(r.status(), 200);
    let (_, logs) = user.get_json("/api/v1/chain/logs").await.unwrap();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["content"], "after");
    assert!(!logs[0]["create_at"].as_str().unwrap().starts_with("9999"));
}
