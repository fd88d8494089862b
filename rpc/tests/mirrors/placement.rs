//! Placement of mirrors on nodes as nodes die, join and come back.

use super::*;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Mirrors by node name, from their statuses.
fn owners(ms: &[Mirror]) -> HashMap<String, String> {
    ms.iter()
        .map(|m| (m.task_id.clone(), m.node.clone()))
        .collect()
}

/// Waits until every mirror has been checked after `since` (ms) with success.
async fn wait_all_fetched_after(
    c: &gitflock_client::Client,
    n: usize,
    since: i64,
    what: &str,
) -> Vec<Mirror> {
    wait_for(what, Duration::from_secs(60), || async {
        let ms = mirrors(c).await;
        (ms.len() == n
            && ms
                .iter()
                .all(|m| m.last_fetch > since && m.last_error.is_empty()))
        .then_some(ms)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_moves_a_dead_nodes_mirrors_takes_a_share_for_a_new_node_and_damps_flaps() {
    const N: usize = 24;
    let up = Upstream::start();
    let env = [("GITFLOCK_MIRROR_SETTLE_SECS", "600")];
    let mut cluster = Cluster::start_with(3, &env).await;
    let mut c = cluster.client().await;
    for i in 0..N {
        up.create(&format!("r{i}"));
        add_mirror(&mut c, &up.url(&format!("r{i}")), 1).await;
    }
    let ms = wait_all_fetched_after(&c, N, 0, "every mirror cloned").await;
    let before = owners(&ms);
    let mut per: HashMap<&str, usize> = HashMap::new();
    for n in before.values() {
        *per.entry(n).or_default() += 1;
    }
    assert_eq!(per.len(), 3, "spread over every node: {per:?}");
    assert!(per.values().all(|&k| k >= 2), "{per:?}");

    // Kill -9 a slave that holds mirrors: its mirrors move, the others stay.
    let master = cluster.wait_master().await;
    let victim = ["node1", "node2", "node3"]
        .into_iter()
        .find(|n| *n != master)
        .unwrap()
        .to_string();
    if cluster.nodes[0].name() == victim {
        c = cluster
            .nodes
            .iter()
            .find(|n| n.name() != victim)
            .unwrap()
            .client()
            .await
            .unwrap();
    }
    let killed_at = now_ms();
    cluster.node(&victim).kill9();
    let ms = wait_all_fetched_after(&c, N, killed_at, "every mirror checked after the kill").await;
    let after_kill = owners(&ms);
    for (id, was) in &before {
        let now = &after_kill[id];
        assert_ne!(now, &victim, "mirror {id} still on the dead node");
        if was != &victim {
            assert_eq!(now, was, "mirror {id} moved off a live node");
        }
    }
    // The new owner cloned and serves it.
    let moved = ms.iter().find(|m| before[&m.task_id] == victim).unwrap();
    assert!(!ls_remote(&moved.clone_url).is_empty());

    // A new node takes about a third (3 live nodes on the ring), from the others only.
    cluster.add_node(&env).await.unwrap();
    let joined_at = now_ms();
    let first = wait_all_fetched_after(
        &c,
        N,
        joined_at + 1500,
        "every mirror checked after the join",
    )
    .await;
    let _ = first;
    let seen_at = now_ms();
    let ms = wait_all_fetched_after(&c, N, seen_at, "another round").await;
    let after_join = owners(&ms);
    let to_new = after_join.values().filter(|n| *n == "node4").count();
    assert!(
        (2..=14).contains(&to_new),
        "node4 took {to_new} of {N}: {after_join:?}"
    );
    for (id, now) in &after_join {
        assert!(
            now == &after_kill[id] || now == "node4",
            "mirror {id} moved between old nodes"
        );
    }

    // The dead node comes back: within the settle time it gets nothing back (no flapping).
    cluster.node(&victim).restart().await.unwrap();
    let back_at = now_ms();
    wait_all_fetched_after(&c, N, back_at + 1500, "mirrors checked after the return").await;
    let r = now_ms();
    let ms = wait_all_fetched_after(&c, N, r, "another round after the return").await;
    assert!(
        ms.iter().all(|m| m.node != victim),
        "a returning node took mirrors back before settling"
    );
    assert_eq!(owners(&ms), after_join);
}
