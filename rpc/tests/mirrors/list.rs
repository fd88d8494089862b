//! The upstream list: mirrors added and removed as it changes, mass removal refused.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upstream_list_adds_removes_and_refuses_mass_removal() {
    let up = Upstream::start();
    let list = up.create("upstream-repos");
    let write_entry = |i: usize| {
        let d = list.join(format!("r/r{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("r{i}")),
            format!(
                "---\nurl:\n- {}\n- https://mirror.example/r{i}\n",
                up.url(&format!("r{i}"))
            ),
        )
        .unwrap();
    };
    for i in 0..10 {
        up.create(&format!("r{i}"));
        write_entry(i);
    }
    std::fs::write(
        list.join("DEFAULTS"),
        "url: git://127.0.0.1:1/defaults.git\n",
    )
    .unwrap();
    std::fs::write(list.join(".ignore"), "url: git://127.0.0.1:1/ignored.git\n").unwrap();
    std::fs::write(list.join("README"), "not an entry\n").unwrap();
    git(&list, &["add", "-A"]);
    git(&list, &["commit", "-q", "-m", "ten repos"]);
    up.push("upstream-repos", &["main"]);

    let list_url = up.url("upstream-repos");
    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_MIRROR_LIST_URL", &list_url),
            ("GITFLOCK_MIRROR_LIST_REFRESH_SECS", "1"),
        ],
    )
    .await;
    let mut c = cluster.client().await;
    // A mirror added by hand is not the list's to remove.
    up.create("manual");
    let manual = add_mirror(&mut c, &up.url("manual"), 60).await;

    let names = |ms: &[Mirror]| {
        let mut v: Vec<String> = ms.iter().map(|m| m.url.clone()).collect();
        v.sort();
        v
    };
    wait_for("ten listed mirrors", Duration::from_secs(30), || async {
        (mirrors(&c).await.len() == 11).then_some(())
    })
    .await;
    let ms = mirrors(&c).await;
    assert!(
        !names(&ms)
            .iter()
            .any(|u| u.contains("defaults") || u.contains("ignored"))
    );
    let t = get(
        &mut c,
        &ms.iter().find(|m| m.url == up.url("r3")).unwrap().task_id,
    )
    .await;
    assert_eq!(t.name, "list:r/r3/r3");

    let head_of_list = |c: &gitflock_client::Client| {
        let mut c = c.clone();
        async move {
            c.mirrors
                .list_mirrors(ListMirrorsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .list
                .unwrap()
        }
    };
    // One entry removed: its mirror goes.
    git(&list, &["rm", "-q", "-r", "r/r0"]);
    git(&list, &["commit", "-q", "-m", "drop r0"]);
    up.push("upstream-repos", &["main"]);
    wait_for("r0 removed", Duration::from_secs(30), || async {
        (mirrors(&c).await.len() == 10).then_some(())
    })
    .await;
    assert!(!names(&mirrors(&c).await).contains(&up.url("r0")));

    // Seven of nine at once: refused, nothing removed, the refusal shown.
    for i in 1..8 {
        git(&list, &["rm", "-q", "-r", &format!("r/r{i}")]);
    }
    git(&list, &["commit", "-q", "-m", "a broken list"]);
    let broken = git(&list, &["rev-parse", "HEAD"]);
    up.push("upstream-repos", &["main"]);
    let l = wait_for("the broken list read", Duration::from_secs(30), || async {
        let l = head_of_list(&c).await;
        (l.commit == broken).then_some(l)
    })
    .await;
    assert!(l.last_error.contains("refusing to remove 7 of 9"), "{l:?}");
    assert_eq!(mirrors(&c).await.len(), 10);
    assert!(get(&mut c, &manual).await.id == manual);
}
