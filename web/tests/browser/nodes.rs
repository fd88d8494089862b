//! The nodes page through a failover: every live field follows, rows keep their order.

use super::*;

/// What the nodes table shows, row by row (in page order): name, role, state, epoch, load.
async fn rows(b: &Client) -> Vec<[String; 5]> {
    let v = js(
        b,
        r##"return Array.from(document.querySelectorAll("#nodes-table tbody tr[data-node]")).map(r => {
             const f = n => { const e = r.querySelector("[data-field=" + n + "]"); return e ? e.textContent.trim() : null; };
             return [r.dataset.node, f("role"), f("state"), f("epoch"), f("load")];
           });"##,
    )
    .await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn the_nodes_page_follows_a_failover_without_a_reload() {
    let d = chromedriver();
    let mut c = Cluster::start(3).await;
    let api = Http::bearer(&c.web);
    let b = browser(&d).await;
    login(&b, &c.web, "/nodes").await;
    let before = rows(&b).await;
    let names: Vec<&str> = before.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"], "sorted by name");
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    mark(&b).await;
    let (_, status) = api.get_json("/api/v1/status").await.unwrap();
    let old = status["master"].as_str().unwrap().to_string();
    let old_epoch = status["epoch"].as_u64().unwrap();
    c.cluster.node(&old).kill9();

    // The new master, as the nodes say it once they agree.
    let (new, epoch) = wait_for("a new master", Duration::from_secs(30), || async {
        let (_, s) = api.get_json("/api/v1/status").await.ok()?;
        let m = s["master"].as_str()?.to_string();
        let e = s["epoch"].as_u64()?;
        let dead = s["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["name"] == old.as_str() && n["state"] == "dead");
        (!m.is_empty() && m != old && e > old_epoch && dead).then_some((m, e))
    })
    .await;
    // The page shows all of it without a reload: roles, states, epochs, the dead node's load.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = rows(&b).await;
        let shown = |name: &str| now.iter().find(|r| r[0] == name).cloned().unwrap();
        let dead = shown(&old);
        let master = shown(&new);
        let live_epochs = now
            .iter()
            .filter(|r| r[0] != old)
            .all(|r| r[3] == epoch.to_string());
        if dead[1] == "slave"
            && dead[2] == "dead"
            && dead[4] == "—"
            && master[1] == "master"
            && master[2] == "alive"
            && live_epochs
            && text(&b, "[data-master]").await.as_deref() == Some(new.as_str())
        {
            let names: Vec<&str> = now.iter().map(|r| r[0].as_str()).collect();
            assert_eq!(names, ["node1", "node2", "node3"], "rows keep their order");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page shows {now:?}; the cluster: master {new}, epoch {epoch}, {old} dead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same_page(&b).await, "the nodes page was reloaded");
    shot(&b, "nodes").await;
    b.close().await.unwrap();
}
