//! Hostile input that does lasting harm if let through: an upstream list with an alias bomb,
//! a huge file or a file name that drives terminals; URLs whose mirrors would be stored inside
//! one another; credentials that hide from masking or follow a redirect to another host.

use super::*;
use crate::fake_http::{FakeHttp, response, unauthorized};
use gitflock_proto::v1::{ListTasksRequest, Mirror, UpstreamList};

async fn list_status(c: &gitflock_client::Client) -> Option<UpstreamList> {
    c.clone()
        .mirrors
        .list_mirrors(ListMirrorsRequest::default())
        .await
        .ok()?
        .into_inner()
        .list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_upstream_list_is_refused_file_by_file_and_the_rest_syncs() {
    let up = Upstream::start();
    up.create("good");
    let list = up.create("upstream-repos");
    let file = |name: &str, text: &str| {
        let path = list.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    file("r/good", &format!("url:\n- {}\n", up.url("good")));
    // An alias bomb: nine levels of nine aliases, 9^9 nodes once expanded, in under 1 KiB.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb.push_str(&format!("url:\n- {}\nx: *a8\n", up.url("bomb")));
    assert!(bomb.len() < 1024);
    file("r/bomb", &bomb);
    file(
        "r/huge",
        &format!("url: {}\n# {}\n", up.url("huge"), "x".repeat(70_000)),
    );
    // A name that would turn a terminal red wherever it is printed.
    file("r/\u{1b}[31mred", &format!("url: {}\n", up.url("red")));
    git(&list, &["add", "-A"]);
    git(&list, &["commit", "-q", "-m", "a hostile list"]);
    let head = git(&list, &["rev-parse", "HEAD"]);
    up.push("upstream-repos", &["main"]);

    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_MIRROR_LIST_URL", &up.url("upstream-repos")),
            ("GITFLOCK_MIRROR_LIST_REFRESH_SECS", "1"),
        ],
    )
    .await;
    let c = cluster.client().await;
    let l = wait_for("the list read", Duration::from_secs(30), || async {
        list_status(&c).await.filter(|l| l.commit == head)
    })
    .await;
    let e = &l.last_error;
    assert!(e.starts_with("3 entries refused: "), "{e}");
    assert!(
        e.contains("r/bomb: YAML aliases (*name) are refused"),
        "{e}"
    );
    assert!(e.contains("r/huge: "), "{e}");
    assert!(
        e.contains("r/\\u{1b}[31mred: the file name holds a control character"),
        "{e}"
    );
    assert!(!e.contains('\u{1b}'), "{e}");
    // The good entry is a mirror, and only it.
    let ms = wait_for("the good mirror", Duration::from_secs(30), || async {
        let ms = mirrors(&c).await;
        (!ms.is_empty()).then_some(ms)
    })
    .await;
    assert_eq!(ms.len(), 1, "{ms:?}");
    assert_eq!(ms[0].url, up.url("good"));
    // The master lives on and keeps syncing (the next read is as cheap).
    let before = l.last_sync;
    wait_for("another sync", Duration::from_secs(30), || async {
        list_status(&c).await.filter(|l| l.last_sync > before)
    })
    .await;
    assert!(cluster.logs().lines().all(|l| !l.contains('\u{1b}')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_of_urls_inside_another_repository_are_stored_beside_it() {
    let up = Upstream::start();
    up.create("a");
    // A repository served from inside the other one's directory (git ignores it there).
    up.create("a.git/objects/x");
    let (outer, inner) = (up.url("a"), up.url("a.git/objects/x"));
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let ids = [
        add_mirror(&mut c, &outer, 1).await,
        add_mirror(&mut c, &inner, 1).await,
    ];
    let synced = |id: &str, what: &str| {
        let (c, id, what) = (c.clone(), id.to_string(), what.to_string());
        async move {
            wait_mirror(&c, &id, &what, Duration::from_secs(30), |m| {
                !m.head.is_empty() && m.last_error.is_empty()
            })
            .await
        }
    };
    let (a, x) = (synced(&ids[0], "a").await, synced(&ids[1], "x").await);
    let (pa, px) = (Path::new(&a.path), Path::new(&x.path));
    assert!(!px.starts_with(pa) && !pa.starts_with(px), "{pa:?} {px:?}");
    assert_eq!(
        px,
        Path::new(&format!("127.0.0.1:{}/a%2Egit/objects/x.git", up.port))
    );

    // Both follow their upstreams, run after run, and neither touches the other.
    let moved_a = up.commit("a", "main", "a moves");
    let moved_x = up.commit("a.git/objects/x", "dev", "x moves");
    for (id, want, url) in [(&ids[0], &moved_a, &outer), (&ids[1], &moved_x, &inner)] {
        let dir = |m: &Mirror| cluster.nodes[0].data_dir().join("mirrors").join(&m.path);
        let m = wait_mirror(&c, id, "the move", Duration::from_secs(30), |m| {
            m.last_error.is_empty() && ls_remote(dir(m).to_str().unwrap()) == ls_remote(url)
        })
        .await;
        let have = ls_remote(dir(&m).to_str().unwrap());
        assert!(have.values().any(|o| o == want), "{have:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_hiding_behind_a_quote_are_masked_unsearchable_and_kept_from_other_hosts() {
    // `here` sends every client to `elsewhere`, which asks for credentials.
    let elsewhere = FakeHttp::start(|_| unauthorized());
    let to = format!(
        "http://127.0.0.1:{}/x.git/info/refs?service=git-upload-pack",
        elsewhere.port
    );
    let here = FakeHttp::start(move |_| response("302 Found", &[("Location", &to)]));
    let url = format!("http://alice:ab'cd@127.0.0.1:{}/x.git", here.port);
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &url, 3600).await;
    let m = wait_mirror(&c, &id, "the failed run", Duration::from_secs(30), |m| {
        !m.last_error.is_empty()
    })
    .await;

    // The redirect was followed, but no credentials went with it.
    assert!(!elsewhere.requests().is_empty(), "{m:?}");
    assert_eq!(elsewhere.authorizations(), Vec::<String>::new());
    assert!(
        m.last_error
            .contains(&format!("not to 127.0.0.1:{}", elsewhere.port)),
        "{}",
        m.last_error
    );
    // Shown masked, whole.
    let t = get(&mut c, &id).await;
    assert_eq!(
        t.target,
        format!("http://***@127.0.0.1:{}/x.git", here.port)
    );
    // Searches see only what is shown.
    for text in ["ab'cd", "cd@", "alice"] {
        let tasks = c
            .tasks
            .list_tasks(ListTasksRequest {
                text: text.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .tasks;
        assert!(tasks.is_empty(), "{text} found {tasks:?}");
        let found = c
            .mirrors
            .list_mirrors(ListMirrorsRequest {
                text: text.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .mirrors;
        assert!(found.is_empty(), "{text} found {found:?}");
    }
    let shown = format!("{m:?} {t:?} {}", cluster.logs());
    assert!(
        !shown.contains("ab'cd") && !shown.contains("alice"),
        "{shown}"
    );
}
