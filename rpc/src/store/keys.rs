//! Every Redis key and channel gitflock uses, built here and nowhere else.
//!
//! Key layout, `P` = the configured prefix (`[redis] prefix`):
//!
//! | key | type | what it holds |
//! |---|---|---|
//! | `P:task:<id>` | hash | id name type target state node attempts max_attempts interval timeout created updated due seq runs kill pin claim epoch again again_at hooked |
//! | `P:results:<id>` | list | JSON results, newest first, capped at `RESULTS_KEPT` |
//! | `P:all` | zset | every task id, scored by `seq` (creation order, unique) |
//! | `P:state:<STATE>` | zset | ids in that state, scored by `seq` |
//! | `P:type:<type>` | zset | ids of that type, scored by `seq` |
//! | `P:types` | set | every type ever created |
//! | `P:due` | zset | WAITING ids, scored by due time (ms) |
//! | `P:ended:<STATE>` | zset | ids that reached final state STATE, scored by when (ms): what retention removes |
//! | `P:inbox:<node>` | list | dispatched ids (the master LPUSHes, the node LMOVEs from the right) |
//! | `P:inflight:<node>` | list | ids the node claimed and has not finished |
//! | `P:seq` | counter | creation order |
//! | `P:claims` | counter | claim numbers (FINISH must present its run's); each incarnation's start at its creation time (ms) × 1000 |
//! | `P:incarnation` | hash | id since lost noticed_by previous: this life of the data (a new id after Redis lost it) |
//! | `P:req:<request id>` | string | → task id, for idempotent CreateTask retries (1 day) |
//! | `P:lease` | string | `"<node> <epoch>"` with PX: the master lease |
//! | `P:epoch` | counter | the newest epoch handed out |
//! | `P:holdoff` | string | with PX: nobody may take the lease (after Redis lost data) |
//! | `P:dispatched` | hash | epoch → tasks dispatched under it |
//! | `P:nodes` | zset | node → last heartbeat (ms) |
//! | `P:nodeinfo:<node>` | hash | addr concurrency running version epoch last leaving dead |
//! | `P:events` | stream | task changes (`id`, `kind` c\|d), capped ~10k entries and (by retention) 5 minutes |
//! | `P:mirror:<id>` | hash | what a mirror task's runs found ([`super::MirrorStatus`]) |
//! | `P:listed` | set | mirror task ids the upstream list made |
//! | `P:list` | hash | the upstream list's last sync ([`super::ListStatus`]) |
//! | `P:blocks:<node>` | list | JSON block records of the node, newest first, last 1000 |
//! | `P:blocknodes` | set | nodes that have block records |
//!
//! Channels: `P:node:<node>` (wake-ups of one node: `inbox`, `due`, `kill <id>`) and
//! `P:Public` (signed heartbeats and elections).
//!
//! Scripts get every name they touch through `KEYS`: a name the caller can build (a fixed key,
//! or the key of the one task or node it names) whole, and a *family* (`P:task:`, `P:inbox:`…)
//! when the member depends on what the script reads (the node a task sits on, the ids in a
//! list) or on a batch of ids; the script appends the member to the family. So the layout
//! above is written once, here.

use gitflock_proto::v1::TaskState;

/// Builds the keys and channel names under the configured prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn fixed(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn family(&self, name: &str) -> String {
        format!("{}:{name}:", self.prefix)
    }

    fn member(&self, family: &str, member: &str) -> String {
        format!("{}:{family}:{member}", self.prefix)
    }

    // ---- tasks ----

    pub fn task(&self, id: &str) -> String {
        self.member("task", id)
    }
    /// `P:task:` — a task's hash is this and its id.
    pub fn task_family(&self) -> String {
        self.family("task")
    }
    pub fn results(&self, id: &str) -> String {
        self.member("results", id)
    }
    pub fn results_family(&self) -> String {
        self.family("results")
    }
    pub fn all(&self) -> String {
        self.fixed("all")
    }
    pub fn state(&self, s: TaskState) -> String {
        self.member("state", s.as_str_name())
    }
    /// `P:state:` — a state's index is this and the state's name (`WAITING`…).
    pub fn state_family(&self) -> String {
        self.family("state")
    }
    pub fn by_type(&self, t: &str) -> String {
        self.member("type", t)
    }
    pub fn type_family(&self) -> String {
        self.family("type")
    }
    pub fn types(&self) -> String {
        self.fixed("types")
    }
    pub fn due(&self) -> String {
        self.fixed("due")
    }
    /// Tasks that reached a final state, by when: retention reads it.
    pub fn ended(&self, s: TaskState) -> String {
        self.member("ended", s.as_str_name())
    }
    /// `P:ended:` — a final state's index is this and the state's name.
    pub fn ended_family(&self) -> String {
        self.family("ended")
    }
    pub fn seq(&self) -> String {
        self.fixed("seq")
    }
    pub fn claims(&self) -> String {
        self.fixed("claims")
    }
    /// Which life of the data this is: made anew whenever Redis lost its data.
    pub fn incarnation(&self) -> String {
        self.fixed("incarnation")
    }
    /// A CreateTask request id's task.
    pub fn request(&self, request_id: &str) -> String {
        self.member("req", request_id)
    }
    pub fn events(&self) -> String {
        self.fixed("events")
    }

    // ---- nodes' queues ----

    pub fn inbox(&self, node: &str) -> String {
        self.member("inbox", node)
    }
    pub fn inbox_family(&self) -> String {
        self.family("inbox")
    }
    pub fn inflight(&self, node: &str) -> String {
        self.member("inflight", node)
    }
    pub fn inflight_family(&self) -> String {
        self.family("inflight")
    }

    // ---- the cluster ----

    pub fn lease(&self) -> String {
        self.fixed("lease")
    }
    pub fn epoch(&self) -> String {
        self.fixed("epoch")
    }
    /// Set (with a TTL) after Redis lost data: nobody takes the lease meanwhile.
    pub fn holdoff(&self) -> String {
        self.fixed("holdoff")
    }
    /// Tasks dispatched per epoch.
    pub fn dispatched(&self) -> String {
        self.fixed("dispatched")
    }
    pub fn nodes(&self) -> String {
        self.fixed("nodes")
    }
    pub fn node_info(&self, node: &str) -> String {
        self.member("nodeinfo", node)
    }
    pub fn node_info_family(&self) -> String {
        self.family("nodeinfo")
    }
    /// The per-node wake-up channel.
    pub fn node_channel(&self, node: &str) -> String {
        self.member("node", node)
    }
    pub fn node_channel_family(&self) -> String {
        self.family("node")
    }
    /// The cluster-wide channel of heartbeats and elections.
    pub fn public_channel(&self) -> String {
        self.fixed("Public")
    }

    // ---- mirrors ----

    /// What a mirror task's runs found.
    pub fn mirror(&self, id: &str) -> String {
        self.member("mirror", id)
    }
    pub fn mirror_family(&self) -> String {
        self.family("mirror")
    }
    /// Mirror task ids the upstream list made.
    pub fn listed(&self) -> String {
        self.fixed("listed")
    }
    /// The upstream list's last sync.
    pub fn list(&self) -> String {
        self.fixed("list")
    }

    // ---- blocks of the log chain ----

    /// A node's block records.
    pub fn blocks(&self, node: &str) -> String {
        self.member("blocks", node)
    }
    /// The nodes that have block records.
    pub fn block_nodes(&self) -> String {
        self.fixed("blocknodes")
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;
    use gitflock_proto::v1::TaskState;

    #[test]
    fn a_family_and_a_member_make_the_members_key() {
        let k = Keys::new("gf");
        assert_eq!(k.task("i"), format!("{}i", k.task_family()));
        assert_eq!(k.results("i"), format!("{}i", k.results_family()));
        assert_eq!(
            k.state(TaskState::Waiting),
            format!("{}WAITING", k.state_family())
        );
        assert_eq!(k.by_type("echo"), format!("{}echo", k.type_family()));
        assert_eq!(k.inbox("n"), format!("{}n", k.inbox_family()));
        assert_eq!(
            k.ended(TaskState::Succeed),
            format!("{}SUCCEED", k.ended_family())
        );
        assert_eq!(k.mirror("i"), format!("{}i", k.mirror_family()));
        assert_eq!(k.inflight("n"), format!("{}n", k.inflight_family()));
        assert_eq!(k.node_info("n"), format!("{}n", k.node_info_family()));
        assert_eq!(k.node_channel("n"), format!("{}n", k.node_channel_family()));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let k = Keys::new("P");
        assert_eq!(k.task("i"), "P:task:i");
        assert_eq!(k.request("r"), "P:req:r");
        assert_eq!(k.lease(), "P:lease");
        assert_eq!(k.node_channel("n"), "P:node:n");
        assert_eq!(k.public_channel(), "P:Public");
        assert_eq!(k.blocks("n"), "P:blocks:n");
        assert_eq!(k.block_nodes(), "P:blocknodes");
    }
}
