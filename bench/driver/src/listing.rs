//! Walking the SUCCEED tasks, page by page (ListTasks), newest first.

use anyhow::Result;
use gitflock_client::Client;
use gitflock_proto::v1::{ListTasksRequest, Task, TaskState};

/// ListTasks' largest page.
const PAGE_SIZE: u32 = 1000;

/// Calls `f` on every SUCCEED task, with its results, newest first, until `f` returns false.
pub async fn each_succeeded(c: &mut Client, f: impl FnMut(&Task) -> bool) -> Result<()> {
    each_listed(c, true, f).await
}

/// Calls `f` on every SUCCEED task, newest first, until `f` returns false.
pub async fn each_listed(
    c: &mut Client,
    with_results: bool,
    mut f: impl FnMut(&Task) -> bool,
) -> Result<()> {
    let mut page_token = String::new();
    loop {
        let page = c
            .tasks
            .list_tasks(ListTasksRequest {
                states: vec![TaskState::Succeed as i32],
                page_size: PAGE_SIZE,
                page_token,
                with_results,
                ..Default::default()
            })
            .await?
            .into_inner();
        for task in &page.tasks {
            if !f(task) {
                return Ok(());
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}
