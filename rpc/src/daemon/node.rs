//! A running node's parts, built once from the config and a connected store, then run: the
//! background loops ([`Node::spawn_loops`]), the gRPC server ([`Node::serve`]) and the
//! ordered stop ([`Node::stop`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tonic_health::server::HealthReporter;

/// The gRPC health service, as served.
pub type Health =
    tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;

use super::incarnation::IncarnationWatch;
use super::listener::Listener;
use super::tls::NodeTls;
use super::{SHUTDOWN_GRACE, Shutdown};
use crate::api::Auth;
use crate::api::chain::ChainService;
use crate::api::mirrors::MirrorService;
use crate::api::tasks::{NodeService, TaskService};
use crate::chain::{self, Chain};
use crate::cluster::lease::Lease;
use crate::cluster::membership::{Membership, Presence};
use crate::cluster::public::Signer;
use crate::engine::changes::ChangeHub;
use crate::engine::dispatch::Dispatcher;
use crate::engine::worker::Worker;
use crate::runner::{self, Registry};
use crate::store::Store;
use gitflock_core::config::Config;
use gitflock_proto::v1::chain_server::ChainServer;
use gitflock_proto::v1::mirrors_server::MirrorsServer;
use gitflock_proto::v1::{nodes_server::NodesServer, tasks_server::TasksServer};

pub struct Node {
    config: Arc<Config>,
    store: Store,
    chain: Arc<Chain>,
    registry: Registry,
    lease: Arc<Lease>,
    worker: Arc<Worker>,
    /// Ends of runs, for the reporter loop (taken when the loops start).
    reports: Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::Finished>>,
    membership: Arc<Membership>,
    dispatcher: Arc<Dispatcher>,
    /// Woken when due work may be waiting for the master (a create, a node back).
    wake_dispatch: Arc<Notify>,
    hub: Arc<ChangeHub>,
    presence: Option<Presence>,
    /// Notices when Redis lost its data (taken when the loops start).
    incarnation: Option<IncarnationWatch>,
    /// Set at shutdown, so heartbeats say "no new work" while runs drain.
    leaving: Arc<AtomicBool>,
    health: HealthReporter,
    /// The server's TLS (off: plaintext).
    tls: NodeTls,
}

/// Until Redis answers, the node's services (and the server as a whole) say NOT_SERVING.
pub async fn not_serving_yet(health: &HealthReporter) {
    health.set_not_serving::<TasksServer<TaskService>>().await;
    health.set_not_serving::<NodesServer<NodeService>>().await;
    let none = tonic_health::ServingStatus::NotServing;
    health.set_service_status("", none).await;
}

impl Node {
    /// Opens the chain, makes this node's standing tasks, recovers what it had in flight, and
    /// builds every part; writes the first heartbeat.
    pub async fn assemble(
        config: Config,
        store: Store,
        health: HealthReporter,
        tls: NodeTls,
    ) -> anyhow::Result<Node> {
        let config = Arc::new(config);
        let name = config.node.name.clone();
        // The log chain needs no Redis; a second process on this data dir fails here.
        let chain = {
            let (name, dir) = (name.clone(), config.node.data_dir.clone());
            let skew = config.chain.max_future_skew;
            tokio::task::spawn_blocking(move || {
                Chain::open(&name, &dir, chain::Clock::from_env(), skew)
            })
            .await??
        };
        let context = Arc::new(runner::Context {
            node: name.clone(),
            store: store.clone(),
            chain: Some(chain.clone()),
            chain_remote: config.chain.remote.clone(),
            branch_pattern: config.chain.branch.clone(),
            data_dir: config.node.data_dir.clone(),
            mirror: config.mirror.clone(),
            standing: Default::default(),
            git_threads: crate::mirror::threads::GitThreads::new(config.node.concurrency),
        });
        let registry = Registry::new(context.clone());
        // Which life of the data Redis holds, known before this node claims anything.
        let mut incarnation =
            IncarnationWatch::new(store.clone(), config.clone(), registry.clone(), context);
        incarnation.first_look().await?;
        crate::mirror::set_timeouts(Duration::from_secs(10), Duration::from_secs(120))
            .map_err(anyhow::Error::msg)?;
        crate::mirror::remote::set_ssh_agent(config.mirror.ssh_agent);
        if config.chain.remote.is_some() && !config.chain.block_interval.is_zero() {
            store
                .create(&runner::block::standing(&name, config.chain.block_interval))
                .await?;
        }
        let signer = Arc::new(Signer::new(&config.cluster.token, &name));
        let cluster = &config.cluster;
        let lease = Lease::new(
            store.clone(),
            &name,
            cluster.lease,
            cluster.heartbeat,
            signer.clone(),
        );
        let (worker, reports) = Worker::new(
            store.clone(),
            &name,
            registry.clone(),
            config.node.concurrency,
        );
        let wake_dispatch = Arc::new(Notify::new());
        let membership = Membership::new(
            &name,
            store.clone(),
            lease.clone(),
            cluster,
            wake_dispatch.clone(),
            signer.clone(),
            tls.dial.clone(),
        );
        let dispatcher = Dispatcher::new(
            store.clone(),
            lease.clone(),
            membership.clone(),
            cluster.dead_after,
            config.mirror.settle,
            wake_dispatch.clone(),
        );
        // What this node had in flight when it last stopped goes back to its inbox.
        let (requeued, ended) = store.recover(&name, &[]).await?;
        if requeued + ended > 0 {
            tracing::info!(
                requeued,
                ended,
                "recovered tasks in flight from the last run"
            );
        }
        let leaving = Arc::new(AtomicBool::new(false));
        let presence = Presence {
            store: store.clone(),
            node: name,
            addr: config.node.advertise.clone(),
            metrics: crate::metrics::scrape_address(
                config.node.metrics_listen,
                &config.node.advertise,
            ),
            heartbeat: cluster.heartbeat,
            load: worker.clone(),
            lease: lease.clone(),
            signer,
            leaving: leaving.clone(),
            health: Some(health.clone()),
        };
        presence.beat().await?;
        Ok(Node {
            hub: ChangeHub::new(store.clone()),
            config,
            store,
            chain,
            registry,
            lease,
            worker,
            reports: Some(reports),
            membership,
            dispatcher,
            wake_dispatch,
            presence: Some(presence),
            incarnation: Some(incarnation),
            leaving,
            health,
            tls,
        })
    }

    /// Starts every background loop, each ending at its phase of `shutdown`.
    pub fn spawn_loops(
        &mut self,
        shutdown: &Shutdown,
        metrics: Option<tokio::net::TcpListener>,
    ) -> TaskTracker {
        let (leaving, drained) = (&shutdown.leaving, &shutdown.drained);
        let tracker = TaskTracker::new();
        tracker.spawn(self.lease.clone().run(leaving.clone()));
        tracker.spawn(self.worker.clone().claim_loop(leaving.clone()));
        tracker.spawn(self.worker.clone().audit_loop(leaving.clone()));
        tracker.spawn(self.worker.clone().kill_loop(drained.clone()));
        if let Some(reports) = self.reports.take() {
            tracker.spawn(self.worker.clone().report_loop(reports, drained.clone()));
        }
        if let Some(presence) = self.presence.take() {
            tracker.spawn(presence.run(drained.clone()));
        }
        if let Some(incarnation) = self.incarnation.take() {
            tracker.spawn(incarnation.run(drained.clone()));
        }
        tracker.spawn(self.membership.clone().run(drained.clone()));
        tracker.spawn(self.dispatcher.clone().run(drained.clone()));
        let retention = crate::engine::retention::Retention {
            store: self.store.clone(),
            lease: self.lease.clone(),
            succeed: self.config.tasks.retention_succeed,
            failed: self.config.tasks.retention_failed,
        };
        tracker.spawn(retention.run(drained.clone()));
        let listener = Listener {
            store: self.store.clone(),
            node: self.config.node.name.clone(),
            worker: self.worker.clone(),
            wake_dispatch: self.wake_dispatch.clone(),
            lease: self.lease.clone(),
            membership: self.membership.clone(),
        };
        tracker.spawn(listener.run(drained.clone()));
        let (data_dir, mirror) = (&self.config.node.data_dir, &self.config.mirror);
        if let Some(listen) = mirror.serve_listen {
            let dir = crate::mirror::mirrors_dir(data_dir);
            tracker.spawn(crate::mirror::serve::run(dir, listen, drained.clone()));
        }
        if let Some(url) = &mirror.list_url {
            let sync = crate::mirror::list::ListSync {
                store: self.store.clone(),
                lease: self.lease.clone(),
                url: url.clone(),
                repo_dir: data_dir.join("upstream-list.git"),
                refresh: mirror.list_refresh,
                interval_secs: mirror.interval_secs,
                allow_file: mirror.allow_file_urls,
                max_remove_percent: mirror.list_max_remove_percent,
            };
            tracker.spawn(sync.run(drained.clone()));
        }
        if let Some(l) = metrics {
            tracker.spawn(crate::metrics::serve(
                l,
                self.store.clone(),
                drained.clone(),
            ));
        }
        tracker.close();
        tracker
    }

    /// Serves the gRPC API (health, reflection, Tasks, Nodes, Chain, Mirrors) on `listener`
    /// until the `closed` phase.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        health_service: Health,
        shutdown: &Shutdown,
    ) -> anyhow::Result<JoinHandle<Result<(), tonic::transport::Error>>> {
        let config = &self.config;
        let auth = Auth::new(&config.cluster.token);
        let closing = shutdown.closed.clone();
        let tasks = TaskService {
            store: self.store.clone(),
            registry: self.registry.clone(),
            hub: self.hub.clone(),
            default_max_attempts: config.node.max_attempts,
            default_timeout_secs: config.node.task_timeout.as_secs(),
            closing: closing.clone(),
        };
        let chain = ChainService {
            chain: self.chain.clone(),
            store: self.store.clone(),
            node: config.node.name.clone(),
            remote: config.chain.remote.clone(),
            closing: closing.clone(),
        };
        let nodes = NodeService {
            store: self.store.clone(),
            lease: self.lease.clone(),
            config: config.clone(),
        };
        let mirrors = MirrorService {
            store: self.store.clone(),
            config: config.mirror.clone(),
        };
        // Both reflection protocols: v1, and v1alpha for the clients that still speak only it
        // (Python's grpcio-reflection, older grpcurl, Postman, Evans).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(gitflock_proto::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let reflection = reflection().build_v1()?;
        self.health.set_serving::<TasksServer<TaskService>>().await;
        self.health.set_serving::<NodesServer<NodeService>>().await;
        let all = tonic_health::ServingStatus::Serving;
        self.health.set_service_status("", all).await;
        // Replies of several segments must not wait on Nagle + delayed ACK.
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |sock| {
                sock.inspect(|s| {
                    let _ = s.set_nodelay(true);
                })
            },
        );
        let server = self
            .tls
            .server()?
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(TasksServer::with_interceptor(tasks, auth.clone()))
            .add_service(NodesServer::with_interceptor(nodes, auth.clone()))
            .add_service(ChainServer::with_interceptor(chain, auth.clone()))
            .add_service(MirrorsServer::with_interceptor(mirrors, auth))
            .serve_with_incoming_shutdown(incoming, async move { closing.cancelled().await });
        tracing::info!(
            node = %config.node.name,
            listen = %config.node.grpc_listen,
            advertise = %config.node.advertise,
            tls = self.tls.enabled(),
            concurrency = config.node.concurrency,
            metrics = %config
                .node
                .metrics_listen
                .map_or("off".to_string(), |a| format!("http://{a}/metrics")),
            "node ready"
        );
        Ok(tokio::spawn(server))
    }

    /// The ordered stop (see [`super::shutdown`]).
    pub async fn stop(
        &self,
        shutdown: &Shutdown,
        loops: TaskTracker,
        server: JoinHandle<Result<(), tonic::transport::Error>>,
    ) {
        let name = &self.config.node.name;
        // 1. Mastership goes at once to another node; no new claims; the inbox goes back.
        shutdown.leaving.cancel();
        self.lease.resign().await;
        self.leaving.store(true, Ordering::SeqCst);
        match self.store.handback(name).await {
            Ok(n) if n > 0 => tracing::info!(count = n, "handed back unclaimed tasks"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.category(), "could not hand back the inbox"),
        }
        // 2. Let runs finish, then hand back the rest; record every result.
        self.worker.drain(SHUTDOWN_GRACE).await;
        shutdown.drained.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), loops.wait()).await;
        // 3. Streams end, the server stops.
        self.health
            .set_not_serving::<TasksServer<TaskService>>()
            .await;
        shutdown.closed.cancel();
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server"),
            Err(_) => tracing::warn!("grpc server did not stop in time"),
            _ => {}
        }
        tracing::info!(node = %name, "stopped");
    }
}
