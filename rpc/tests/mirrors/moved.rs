//! A mirror that moves to another node keeps what it said about its upstream.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_moved_off_a_dead_node_keeps_its_last_change_when_the_upstream_did_not_move() {
    let up = Upstream::start();
    up.create("steady");
    let mut cluster = Cluster::start(3).await;
    cluster.wait_master().await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &up.url("steady"), 1).await;
    let first = wait_mirror(&c, &id, "the first clone", Duration::from_secs(30), |m| {
        m.last_change > 0 && m.last_error.is_empty() && !m.node.is_empty()
    })
    .await;
    // Its node dies (the master among them, maybe: another takes over): the mirror is cloned
    // again elsewhere, from an upstream that did not change.
    let owner = first.node.clone();
    let alive = cluster
        .nodes
        .iter()
        .find(|n| n.name() != owner)
        .unwrap()
        .client()
        .await
        .unwrap();
    c = alive;
    cluster.node(&owner).kill9();
    let moved = wait_mirror(
        &c,
        &id,
        "the clone on another node",
        Duration::from_secs(60),
        |m| m.node != owner && !m.node.is_empty() && m.last_fetch > first.last_fetch,
    )
    .await;
    assert!(moved.last_error.is_empty(), "{moved:?}");
    assert_eq!(moved.head, first.head);
    assert_eq!(
        moved.last_change, first.last_change,
        "the upstream did not change: {first:?} → {moved:?}"
    );

    // A real change still counts.
    up.commit("steady", "main", "second");
    let changed = wait_mirror(
        &c,
        &id,
        "the upstream's change",
        Duration::from_secs(30),
        |m| m.last_change > first.last_change,
    )
    .await;
    assert_ne!(changed.head, first.head);
}
