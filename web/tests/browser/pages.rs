//! What a new user meets on the pages: failing mirrors among the recent failures, the type
//! filter, a confirmation before a bulk kill, every form error at once, words that wrap
//! where they should, counts in good English, and the chain of any node.

use super::*;

/// Where the text of `css`'s first element wraps inside a word: the pairs of characters a
/// line break falls between, when the first is neither `/` nor a space.
async fn breaks_inside_words(b: &Client, css: &str) -> Vec<String> {
    let v = b
        .execute(
            r#"const el = document.querySelector(arguments[0]);
               if (!el) return null;
               const w = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
               let prev = null, top = null; const bad = [];
               while (w.nextNode()) {
                 const t = w.currentNode;
                 for (let i = 0; i < t.length; i++) {
                   const r = document.createRange(); r.setStart(t, i); r.setEnd(t, i + 1);
                   const box = r.getBoundingClientRect();
                   if (box.width === 0) continue;
                   if (top !== null && box.top > top + 2 && prev !== "/" && prev !== " ") bad.push(prev + t.data[i]);
                   top = box.top; prev = t.data[i];
                 }
               }
               return bad;"#,
            vec![json!(css)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// How many lines the text of each element matching `css` takes.
async fn line_counts(b: &Client, css: &str) -> Vec<u64> {
    let v = b
        .execute(
            r#"return Array.from(document.querySelectorAll(arguments[0])).map(el => {
                 const r = document.createRange(); r.selectNodeContents(el);
                 return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size;
               });"#,
            vec![json!(css)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn the_pages_speak_plainly_to_a_new_user() {
    let d = chromedriver();
    let c = Cluster::start(2).await;
    let api = Http::bearer(&c.web);
    let b = browser(&d).await;
    let t0 = Instant::now();
    login(&b, &c.web, "/tasks").await;

    step(t0, "The type filter");
    let sleeper = api.create("sleep", "60s", "a sleeper", 0).await;
    b.find(Locator::Id("type-filter"))
        .await
        .unwrap()
        .select_by_value("sleep")
        .await
        .unwrap();
    b.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = b.current_url().await.unwrap();
        if url.query().unwrap_or_default().contains("type=sleep") {
            break;
        }
        assert!(Instant::now() < deadline, "the filter did not apply: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    step(t0, "A bulk kill asks first");
    let rows = format!("tr[data-task-id=\"{sleeper}\"]");
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&rows))
        .await
        .unwrap();
    b.find(Locator::Id("select-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    js(
        &b,
        "window.__asked = ''; window.confirm = q => { window.__asked = q; return false; }; return null;",
    )
    .await;
    mark(&b).await;
    b.find(Locator::Id("bulk-kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let asked = js(&b, "return window.__asked;").await;
    assert!(
        asked
            .as_str()
            .unwrap_or_default()
            .starts_with("Kill the selected tasks?"),
        "{asked}"
    );
    assert!(same_page(&b).await, "declining sent the form anyway");
    assert_eq!(api.task_state(&sleeper).await.as_deref(), Some("RUNNING"));

    step(t0, "Every form error at once");
    submit_task_form(&b, &c.web, "sleep", "forever", "", "soon").await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("error-target"))
        .await
        .unwrap();
    assert!(
        text(&b, "#error-target")
            .await
            .unwrap()
            .contains("duration")
    );
    assert!(
        text(&b, "#error-interval")
            .await
            .unwrap()
            .contains("30s, 5m")
    );
    shot(&b, "task-form").await;

    step(t0, "A mirror that keeps failing is a recent failure");
    let failing = api
        .create("mirror", "git://127.0.0.1:1/team/gone.git", "", 0)
        .await;
    wait_for(
        "the mirror's first failed run",
        Duration::from_secs(30),
        || async {
            let (_, t) = api
                .get_json(&format!("/api/v1/tasks/{failing}"))
                .await
                .ok()?;
            (t["results"].as_array()?.first()?["code"] != 0).then_some(())
        },
    )
    .await;
    assert_eq!(api.task_state(&failing).await.as_deref(), Some("WAITING"));

    step(t0, "A mirror with one ref");
    let upstream = c.dir.path().join("one-ref");
    std::fs::create_dir_all(&upstream).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.join("README"), "one\n").unwrap();
    git(&upstream, &["add", "README"]);
    git(&upstream, &["commit", "-q", "-m", "one"]);
    let url = format!("file://{}", upstream.display());
    let one = api.create("mirror", &url, "", 0).await;
    let row = format!("tr[data-task-id=\"{one}\"]");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        b.goto(&c.web.url("/mirrors")).await.unwrap();
        let head = text(&b, &format!("{row} td:nth-child(4)")).await;
        if head.as_deref().is_some_and(|h| h.contains("main")) {
            assert!(head.unwrap().ends_with("1 ref"), "one ref, in good English");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror never synced\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The failing mirror shows the node that runs it.
    let owner = text(
        &b,
        &format!("tr[data-task-id=\"{failing}\"] td:nth-child(3)"),
    )
    .await
    .unwrap_or_default();
    assert!(owner == "node1" || owner == "node2", "owner {owner:?}");
    for css in [
        format!("{row} td:nth-child(1)"),
        format!("{row} td:nth-child(7) code"),
    ] {
        let bad = breaks_inside_words(&b, &css).await;
        assert!(bad.is_empty(), "{css} wraps inside words at {bad:?}");
    }
    let buttons = line_counts(&b, "#mirrors-table button").await;
    assert!(
        buttons.iter().all(|n| *n == 1),
        "buttons on one line: {buttons:?}"
    );
    shot(&b, "mirrors").await;

    step(t0, "The overview lists the failing mirror");
    b.goto(&c.web.url("/")).await.unwrap();
    let failure = format!("#failures tr[data-task-id=\"{failing}\"]");
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&failure))
        .await
        .unwrap();
    let row_text = text(&b, &failure).await.unwrap();
    assert!(row_text.contains("mirror"), "{row_text}");
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    shot(&b, "overview").await;

    step(t0, "The chain of any node");
    b.goto(&c.web.url("/chain")).await.unwrap();
    b.find(Locator::Id("chain-node"))
        .await
        .unwrap()
        .select_by_value("node2")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.current_url().await.unwrap().query() != Some("node=node2") {
        assert!(
            Instant::now() < deadline,
            "choosing node2 did not show its chain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text(&b, "h1").await.unwrap().contains("of node2"));
    write_entry(&b, "written to node2").await;
    assert!(text(&b, "h1").await.unwrap().contains("of node2"));
    wait_text(
        &b,
        "the entry on node2's chain",
        "#entries-table tbody tr td.msg pre",
        "written to node2",
        Duration::from_secs(5),
    )
    .await;
    shot(&b, "chain").await;
    b.goto(&c.web.url("/chain?node=node1")).await.unwrap();
    assert!(text(&b, "h1").await.unwrap().contains("of node1"));
    assert_ne!(
        text(&b, "#entries-table tbody tr td.msg pre")
            .await
            .as_deref(),
        Some("written to node2"),
        "node1's chain is another chain"
    );
    b.close().await.unwrap();
}
