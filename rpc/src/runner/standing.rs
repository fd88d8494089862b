//! The recurring mirror tasks this node ran lately, kept in memory: if Redis loses its data,
//! nothing else remembers them, and the node makes them again (`daemon::node` watches the
//! incarnation). A task leaves the record when a run of it finds it gone or no longer this
//! node's, when a check finds it deleted or killed, or when it has not run here for two of
//! its intervals and an hour (it moved to another node, which keeps it in its own record).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One recorded task: how to make it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandingTask {
    pub id: String,
    pub target: String,
    pub interval: Duration,
}

#[derive(Default)]
pub struct Standing {
    tasks: Mutex<HashMap<String, (StandingTask, Instant)>>,
}

impl Standing {
    /// A run of this task started here.
    pub fn ran(&self, t: StandingTask) {
        let mut m = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(t.id.clone(), (t, Instant::now()));
    }

    /// The task is gone, or not this node's any more.
    pub fn forget(&self, id: &str) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The tasks in the record, the stale ones dropped first.
    pub fn tasks(&self) -> Vec<StandingTask> {
        let mut m = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (t, at)| at.elapsed() < t.interval * 2 + Duration::from_secs(3600));
        let mut v: Vec<StandingTask> = m.values().map(|(t, _)| t.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_what_ran_until_forgotten() {
        let s = Standing::default();
        let t = |id: &str| StandingTask {
            id: id.into(),
            target: format!("https://example.org/{id}.git"),
            interval: Duration::from_secs(600),
        };
        s.ran(t("b"));
        s.ran(t("a"));
        s.ran(t("a"));
        assert_eq!(s.tasks(), vec![t("a"), t("b")]);
        s.forget("a");
        assert_eq!(s.tasks(), vec![t("b")]);
    }
}
