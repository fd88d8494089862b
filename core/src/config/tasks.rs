//! The `[tasks]` section: how long finished one-off tasks stay in Redis.

use super::ConfigError;
use super::raw::Raw;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TasksConfig {
    /// A one-off task that ended SUCCEED is removed (with its results) this long after.
    pub retention_succeed: Duration,
    /// A one-off task that ended RUNTIME_ERROR or KILLED is removed this long after.
    pub retention_failed: Duration,
}

impl TasksConfig {
    pub(super) fn from_raw(raw: &Raw) -> Result<TasksConfig, ConfigError> {
        let (min, max) = (Duration::from_secs(1), 3650 * DAY);
        Ok(TasksConfig {
            retention_succeed: raw.duration(
                "tasks",
                "retention_succeed_secs",
                7 * DAY,
                min,
                max,
            )?,
            retention_failed: raw.duration("tasks", "retention_failed_secs", 30 * DAY, min, max)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TOKEN, load};
    use std::time::Duration;

    #[test]
    fn retention_takes_durations_and_defaults_to_a_week_and_a_month() {
        let c = load(TOKEN, &[]).unwrap();
        assert_eq!(c.tasks.retention_succeed, Duration::from_secs(7 * 86400));
        assert_eq!(c.tasks.retention_failed, Duration::from_secs(30 * 86400));
        let c = load(
            &format!(
                "{TOKEN}[tasks]\nretention_succeed_secs = 90\nretention_failed_secs = \"2h\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.tasks.retention_succeed, Duration::from_secs(90));
        assert_eq!(c.tasks.retention_failed, Duration::from_secs(7200));
        let c = load(TOKEN, &[("GITFLOCK_TASKS_RETENTION_SUCCEED_SECS", "60")]).unwrap();
        assert_eq!(c.tasks.retention_succeed, Duration::from_secs(60));
        for value in ["soon", "0", "-5"] {
            let e = load(TOKEN, &[("GITFLOCK_TASKS_RETENTION_FAILED_SECS", value)]).unwrap_err();
            assert!(
                e.to_string().contains("[tasks] retention_failed_secs"),
                "{e}"
            );
        }
    }
}
