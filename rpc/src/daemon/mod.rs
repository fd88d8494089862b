//! The node daemon: wires the store, lease, dispatcher, worker, presence, listener and gRPC
//! server together, and shuts them down in order.
//!
//! Shutdown (SIGTERM or SIGINT): resign mastership (announced on the Public channel so another
//! node takes over at once); stop claiming and hand the unclaimed inbox back; let running
//! tasks finish for the grace period, then hand the rest back; record every result; stop the
//! gRPC server; exit 0.

pub mod listener;

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::api::Auth;
use crate::api::chain::ChainService;
use crate::api::tasks::{NodeService, TaskService};
use crate::chain::{self, Chain};
use crate::cluster::lease::Lease;
use crate::cluster::membership::{Membership, Presence};
use crate::cluster::public::Signer;
use crate::daemon::listener::Listener;
use crate::engine::changes::ChangeHub;
use crate::engine::dispatch::Dispatcher;
use crate::engine::worker::Worker;
use crate::runner;
use crate::runner::Registry;
use crate::store::Store;
use gitflock_core::config::Config;
use gitflock_proto::v1::chain_server::ChainServer;
use gitflock_proto::v1::mirrors_server::MirrorsServer;
use gitflock_proto::v1::{nodes_server::NodesServer, tasks_server::TasksServer};
use tokio::sync::Notify;

/// How long running tasks may take to finish at shutdown before they are handed back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connects to Redis, retrying until it answers or `stop` fires. Each attempt is bounded
/// (the connection manager itself would retry forever) and raced against `stop`, so a node
/// started while Redis is away still stops at once on SIGTERM.
async fn connect(config: &Config, stop: &CancellationToken) -> Option<Store> {
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let attempt = async {
            let s = Store::connect(&config.redis.url, &config.redis.prefix).await?;
            s.ping().await?;
            Ok::<_, crate::store::StoreError>(s)
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return None,
            r = tokio::time::timeout(Duration::from_secs(3), attempt) => r,
        };
        match outcome {
            Ok(Ok(s)) => {
                if warned {
                    tracing::info!("redis answers now");
                }
                return Some(s);
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %e, "cannot reach redis yet; retrying");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!("redis does not answer yet; retrying");
                warned = true;
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let name = config.node.name.clone();
    std::fs::create_dir_all(&config.node.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data dir {}: {e}",
            config.node.data_dir.display()
        )
    })?;

    // Bind first: a taken port is a startup error, not a later surprise.
    let listener = tokio::net::TcpListener::bind(config.node.grpc_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.node.grpc_listen))?;
    let metrics_listener = match config.node.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?,
        ),
        None => None,
    };

    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        gitflock_core::shutdown::signal().await;
        tracing::info!("shutting down");
        signalled.cancel();
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<TasksServer<TaskService>>()
        .await;
    health_reporter
        .set_not_serving::<NodesServer<NodeService>>()
        .await;

    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;

    // Until Redis answers, the port serves health alone (NOT_SERVING), so load balancers and
    // orchestrators see a live but unready node. Dropping that server when Redis answers
    // frees the listener for the full one.
    let store = {
        let incoming = futures_util::stream::unfold(&listener, |l| async move {
            Some((l.accept().await.map(|(sock, _)| sock), l))
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = tonic::transport::Server::builder()
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = ready_rx.await;
            });
        tokio::pin!(waiting);
        tokio::select! {
            s = connect(&config, &stop) => {
                // Connections this server accepted must not outlive it (they would answer
                // UNIMPLEMENTED for everything but health): a graceful stop sends them
                // GOAWAY, and their clients redial the full server.
                let _ = ready_tx.send(());
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut waiting).await;
                s
            }
            r = &mut waiting => {
                r?;
                None
            }
        }
    };
    let Some(store) = store else {
        return Ok(());
    };
    tracing::info!(node = %name, prefix = %config.redis.prefix, "connected to redis");

    // The log chain needs no Redis; open it first (a second process on this data dir fails
    // here).
    let chain = {
        let (name, dir) = (name.clone(), config.node.data_dir.clone());
        tokio::task::spawn_blocking(move || Chain::open(&name, &dir, chain::Clock::from_env()))
            .await??
    };
    let registry = Registry::new(Arc::new(runner::Context {
        node: name.clone(),
        store: store.clone(),
        chain: Some(chain.clone()),
        chain_remote: config.chain.remote.clone(),
        branch_pattern: config.chain.branch.clone(),
        data_dir: config.node.data_dir.clone(),
        mirror: config.mirror.clone(),
    }));
    crate::mirror::fetch::set_timeouts(Duration::from_secs(10), Duration::from_secs(120));
    if config.chain.remote.is_some() && !config.chain.block_interval.is_zero() {
        // This node's standing recurring block task, made once.
        store
            .create(&runner::block::standing(&name, config.chain.block_interval))
            .await?;
    }
    let signer = Arc::new(Signer::new(&config.cluster.token, &name));
    let lease = Lease::new(
        store.clone(),
        &name,
        config.cluster.lease,
        config.cluster.heartbeat,
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
        &config.cluster,
        wake_dispatch.clone(),
        signer.clone(),
    );
    let dispatcher = Dispatcher::new(
        store.clone(),
        lease.clone(),
        membership.clone(),
        config.cluster.dead_after,
        config.mirror.settle,
        wake_dispatch.clone(),
    );
    let hub = ChangeHub::new(store.clone());

    // What this node had in flight when it last stopped goes back to its inbox.
    let (requeued, ended) = store.recover(&name, &[]).await?;
    if requeued + ended > 0 {
        tracing::info!(
            requeued,
            ended,
            "recovered tasks in flight from the last run"
        );
    }
    let presence = Presence {
        store: store.clone(),
        node: name.clone(),
        addr: config.node.advertise.clone(),
        heartbeat: config.cluster.heartbeat,
        load: worker.clone(),
        lease: lease.clone(),
        signer,
        leaving: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        health: Some(health_reporter.clone()),
    };
    let leaving = presence.leaving.clone();
    presence.beat().await?;

    // Background loops. `claims` stops first at shutdown; `background` after the runs ended.
    let claims = CancellationToken::new();
    let background = CancellationToken::new();
    let reports_done = CancellationToken::new();
    let lease_stop = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tracker.spawn(lease.clone().run(lease_stop.clone()));
    tracker.spawn(presence.run(background.clone()));
    tracker.spawn(membership.clone().run(background.clone()));
    tracker.spawn(dispatcher.clone().run(background.clone()));
    tracker.spawn(worker.clone().claim_loop(claims.clone()));
    tracker.spawn(worker.clone().audit_loop(claims.clone()));
    tracker.spawn(worker.clone().report_loop(reports, reports_done.clone()));
    tracker.spawn(
        Listener {
            store: store.clone(),
            node: name.clone(),
            worker: worker.clone(),
            wake_dispatch,
            lease: lease.clone(),
            membership,
        }
        .run(background.clone()),
    );
    if let Some(listen) = config.mirror.serve_listen {
        tracker.spawn(crate::mirror::serve::run(
            crate::mirror::mirrors_dir(&config.node.data_dir),
            listen,
            background.clone(),
        ));
    }
    if let Some(url) = &config.mirror.list_url {
        tracker.spawn(
            crate::mirror::list::ListSync {
                store: store.clone(),
                lease: lease.clone(),
                url: url.clone(),
                repo_dir: config.node.data_dir.join("upstream-list.git"),
                refresh: config.mirror.list_refresh,
                interval_secs: config.mirror.interval_secs,
                allow_file: config.mirror.allow_file_urls,
                max_remove_percent: config.mirror.list_max_remove_percent,
            }
            .run(background.clone()),
        );
    }
    if let Some(l) = metrics_listener {
        tracker.spawn(crate::metrics::serve(l, store.clone(), background.clone()));
    }
    tracker.close();

    let auth = Auth::new(&config.cluster.token);
    let streams_closing = CancellationToken::new();
    let tasks = TaskService {
        store: store.clone(),
        registry,
        hub,
        default_max_attempts: config.node.max_attempts,
        default_timeout_secs: config.node.task_timeout.as_secs(),
        closing: streams_closing.clone(),
    };
    let chain_service = ChainService {
        chain,
        store: store.clone(),
        node: name.clone(),
        remote: config.chain.remote.clone(),
        closing: streams_closing.clone(),
    };
    let nodes = NodeService {
        store: store.clone(),
        lease: lease.clone(),
        config: config.clone(),
    };
    let mirrors = crate::api::mirrors::MirrorService {
        store: store.clone(),
        config: config.mirror.clone(),
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(gitflock_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    health_reporter
        .set_serving::<TasksServer<TaskService>>()
        .await;
    health_reporter
        .set_serving::<NodesServer<NodeService>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let server_stop = CancellationToken::new();
    let server = tokio::spawn({
        let server_stop = server_stop.clone();
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(TasksServer::with_interceptor(tasks, auth.clone()))
            .add_service(NodesServer::with_interceptor(nodes, auth.clone()))
            .add_service(ChainServer::with_interceptor(chain_service, auth.clone()))
            .add_service(MirrorsServer::with_interceptor(mirrors, auth))
            .serve_with_incoming_shutdown(
                // Replies of several segments must not wait on Nagle + delayed ACK.
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    |sock| {
                        sock.inspect(|s| {
                            let _ = s.set_nodelay(true);
                        })
                    },
                ),
                async move { server_stop.cancelled().await },
            )
    });
    tracing::info!(
        node = %name,
        listen = %config.node.grpc_listen,
        advertise = %config.node.advertise,
        concurrency = config.node.concurrency,
        "node ready"
    );

    gitflock_core::systemd::ready();
    stop.cancelled().await;
    gitflock_core::systemd::stopping();

    // 1. Mastership goes at once to another node (announced on the Public channel).
    lease_stop.cancel();
    lease.resign().await;
    // 2. No new claims; what is not claimed goes back to the master.
    claims.cancel();
    leaving.store(true, std::sync::atomic::Ordering::SeqCst);
    match store.handback(&name).await {
        Ok(n) if n > 0 => tracing::info!(count = n, "handed back unclaimed tasks"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not hand back the inbox"),
    }
    // 3. Let runs finish, then hand back the rest; record every result.
    worker.drain(SHUTDOWN_GRACE).await;
    reports_done.cancel();
    background.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    health_reporter
        .set_not_serving::<TasksServer<TaskService>>()
        .await;
    streams_closing.cancel();
    server_stop.cancel();
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server"),
        Err(_) => tracing::warn!("grpc server did not stop in time"),
        _ => {}
    }
    tracing::info!(node = %name, "stopped");
    Ok(())
}
