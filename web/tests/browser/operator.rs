//! An operator's round: log in, create tasks from the form, follow them live, kill and
//! delete, bulk actions, the chain, the mirrors.

use super::*;

#[tokio::test]
async fn an_operator_drives_tasks_chain_and_mirrors_from_the_browser() {
    let d = chromedriver();
    let c = Cluster::start(2).await;
    let api = Http::bearer(&c.web);
    let b = browser(&d).await;
    let t0 = Instant::now();

    // Log in: a wrong password is refused with a message, the right one lands on the page.
    b.goto(&c.web.url("/tasks")).await.unwrap();
    assert_eq!(path(&b).await, "/login");
    shot(&b, "login").await;
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong password")
        .await
        .unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the login error",
        "#login-error",
        "Wrong password.",
        Duration::from_secs(10),
    )
    .await;
    login(&b, &c.web, "/tasks").await;

    step(t0, "A validation error");
    // A validation error, shown on its field; what was typed stays.
    submit_task_form(&b, &c.web, "echo", "keep me", "", "soon").await;
    wait_text(
        &b,
        "the interval error",
        "#error-interval",
        "a duration such as 30s, 5m or 2h, or a number of seconds (0 or empty: run once)",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        b.find(Locator::Id("target"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("keep me")
    );

    step(t0, "An echo task from the form");
    // An echo task from the form reaches SUCCEED on its page without a reload.
    submit_task_form(
        &b,
        &c.web,
        "echo",
        "hello from the browser",
        "browser echo",
        "",
    )
    .await;
    let echo = shown_task_id(&b).await;
    mark(&b).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while text(&b, "#task-state").await.as_deref() != Some("SUCCEED") {
        if Instant::now() > deadline {
            panic!(
                "the echo task's page shows {:?} after 30 s; the API says {:?}\n{}",
                text(&b, "#task-state").await,
                api.task_state(&echo).await,
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(
        &b,
        "its output",
        "#results td.msg pre",
        "hello from the browser",
        Duration::from_secs(10),
    )
    .await;
    assert!(same_page(&b).await, "the page was reloaded");

    step(t0, "The task list follows");
    // The task list follows changes live: a task created elsewhere appears and finishes.
    b.goto(&c.web.url("/tasks")).await.unwrap();
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    mark(&b).await;
    let slow = api.create("sleep", "1500ms", "created elsewhere", 0).await;
    let row = format!("tr[data-task-id=\"{slow}\"] [data-field=state]");
    wait_text(
        &b,
        "the new row running",
        &row,
        "RUNNING",
        Duration::from_secs(20),
    )
    .await;
    wait_text(
        &b,
        "the new row succeeded",
        &row,
        "SUCCEED",
        Duration::from_secs(20),
    )
    .await;
    assert!(same_page(&b).await, "the list was reloaded");

    step(t0, "A recurring task");
    // A recurring task: it runs again and again (live), then is killed, then deleted.
    submit_task_form(&b, &c.web, "echo", "tick", "recurring tick", "1").await;
    let tick = shown_task_id(&b).await;
    mark(&b).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs: u64 = text(&b, "#task-runs")
            .await
            .unwrap_or_default()
            .parse()
            .unwrap_or(0);
        if runs >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recurring task did not run twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same_page(&b).await);
    b.find(Locator::Id("kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the recurring task killed",
        "#task-state",
        "KILLED",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(api.task_state(&tick).await.as_deref(), Some("KILLED"));
    js(&b, "window.confirm = () => true; return null;").await;
    b.find(Locator::Id("delete"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the deletion notice",
        ".alert.good",
        "Task deleted.",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(path(&b).await, "/tasks");
    assert!(
        text(&b, &format!("tr[data-task-id=\"{tick}\"]"))
            .await
            .is_none()
    );
    assert_eq!(
        api.get_json(&format!("/api/v1/tasks/{tick}"))
            .await
            .unwrap()
            .0,
        404
    );

    step(t0, "Select all + bulk");
    // Select all + bulk kill: per-id outcomes.
    let s1 = api.create("sleep", "60s", "bulk one", 0).await;
    let s2 = api.create("sleep", "60s", "bulk two", 0).await;
    b.goto(
        &c.web
            .url("/tasks?type=sleep&state=RUNNING&state=INQUEUE&state=WAITING"),
    )
    .await
    .unwrap();
    b.find(Locator::Id("select-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the selection count",
        "#selected-count",
        "2 selected",
        Duration::from_secs(5),
    )
    .await;
    // Killing asks first (see `pages`): yes.
    js(&b, "window.confirm = () => true; return null;").await;
    b.find(Locator::Id("bulk-kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("outcomes"))
        .await
        .unwrap();
    for id in [&s1, &s2] {
        let ok = text(&b, &format!("tr[data-outcome-id=\"{id}\"] .badge")).await;
        assert_eq!(ok.as_deref(), Some("done"), "bulk kill of {id}");
    }
    assert_eq!(
        text(&b, "p.big").await.as_deref(),
        Some("2 of 2 tasks killed.")
    );

    step(t0, "The chain page");
    // The chain page: write an entry from the form, make a block, see both.
    b.goto(&c.web.url("/chain")).await.unwrap();
    b.find(Locator::Id("level"))
        .await
        .unwrap()
        .select_by_value("warn")
        .await
        .unwrap();
    write_entry(&b, "deployed v1.2 to <prod>").await;
    wait_text(
        &b,
        "the new entry",
        "#entries-table tbody tr td.msg pre",
        "deployed v1.2 to <prod>",
        Duration::from_secs(5),
    )
    .await;
    b.find(Locator::Id("make-block"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        b.goto(&c.web.url("/chain")).await.unwrap();
        if text(&b, "#blocks-table tbody tr td").await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no block listed on the chain page:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    step(t0, "The mirrors page");
    // The mirrors page: a mirror of a local repository, with its data.
    let (ms, _) = api.get_json("/api/v1/mirrors").await.unwrap();
    if ms == 501 {
        b.goto(&c.web.url("/mirrors")).await.unwrap();
        assert!(
            text(&b, "#mirrors-unavailable")
                .await
                .unwrap()
                .contains("mirrors not available")
        );
    } else {
        let upstream = c.dir.path().join("upstream");
        std::fs::create_dir_all(&upstream).unwrap();
        git(&upstream, &["init", "-q", "-b", "main"]);
        std::fs::write(upstream.join("README"), "hello\n").unwrap();
        git(&upstream, &["add", "README"]);
        git(&upstream, &["commit", "-q", "-m", "first"]);
        let url = format!("file://{}", upstream.display());
        api.create("mirror", &url, "upstream", 0).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            b.goto(&c.web.url("/mirrors")).await.unwrap();
            let head = text(&b, "#mirrors-table tbody tr td:nth-child(4)")
                .await
                .unwrap_or_default();
            if head.contains("main") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the mirror's head never showed: {head:?}\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    step(t0, "The remaining screenshots");
    // The remaining screenshots, with the data made above.
    b.goto(&c.web.url(&format!("/tasks/{echo}"))).await.unwrap();
    shot(&b, "task").await;
    b.goto(&c.web.url("/tasks")).await.unwrap();
    shot(&b, "tasks").await;
    b.close().await.unwrap();
}
