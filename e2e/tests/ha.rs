//! Issue 12's failure test: the highly-available topology, every part in its own process on
//! this machine, losing one part after another during a rollout.
//!
//! A 3-member etcd cluster, two `tug apiserver` on it (A and B), a `tug controllers` and a
//! `tug scheduler` on each API server, two sim agents. During a rollout of a 10-replica
//! Deployment the test SIGKILLs, in turn: the etcd leader member, API server A (whose
//! components lead), then the leading controller manager and the leading scheduler. Meanwhile
//! it writes numbered ConfigMaps through both API servers and watches the two Leases.
//!
//! What it checks, as a user could:
//! - the rollout completes: 10 updated, available replicas of the new image, no extra pods;
//! - no acknowledged write is lost: every ConfigMap create that got a 2xx exists afterwards,
//!   with its value, read through either API server;
//! - one leader at a time: every change of a Lease's holder (as the watch saw it) comes at
//!   least the renew deadline (10 s) after the previous holder's last renewal. A leader that
//!   cannot renew for that long stops its work (`ctl/src/leader.rs`), so the two never act at
//!   once. And every controller-manager event carries its writer's identity
//!   (`reportingInstance`): each was written while that identity held the Lease;
//! - clients of the surviving API server keep working: every write through B while A is
//!   down is acknowledged.
//!
//! The agents talk to B, the API server that survives: a node whose only API server dies is
//! a dead node, which `components.rs` covers. One of them runs on a machine of its own, as far
//! as it can tell: a network namespace the test creates, joined to this one by a veth pair,
//! with B listening on the host's end (root only; without root it runs on loopback too). Components pointed at A lose their Leases when
//! A dies and the standbys on B take over, as kube-controller-manager (one API server each,
//! usually behind a load balancer) does; A then comes back, so the later kills still leave a
//! standby to take over.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_e2e::components::{ApiServer, Component, NetNs, identity_pid};

/// The Leases of the two leader-elected components.
const CONTROLLER_LEASE: &str = "kube-controller-manager";
const SCHEDULER_LEASE: &str = "kube-scheduler";

/// How long a leader that cannot renew keeps acting (`LeaseConfig::new`'s renew deadline).
const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Bound on each failover: the 15 s lease, a 2 s retry period and slack for a loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on a single API request of the test's own clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Bound on one numbered write. Longer than [`REQUEST_TIMEOUT`]: a write that needs a new etcd
/// leader or a loaded machine's fsync can take seconds and still be acknowledged, and a write
/// that is slow is not a write that failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const REPLICAS: i32 = 10;

/// Each new pod must be Ready this long before the next old one goes: with one pod at a time,
/// the rollout lasts at least 10 × 4 s, long enough for the kills to fall inside it.
const MIN_READY_SECONDS: i32 = 4;

fn log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

async fn client(kubeconfig: &Path) -> kube::Client {
    tugboat_testkit::kube::client_from_kubeconfig(kubeconfig, REQUEST_TIMEOUT)
        .await
        .unwrap()
}

/// One acknowledged or failed ConfigMap create.
#[derive(Clone, Debug)]
struct Write {
    name: String,
    value: String,
    /// Through which API server.
    via: &'static str,
    started: Instant,
    acknowledged: bool,
}

/// Creates `ack-<via>-<n>` ConfigMaps through `client` every 50 ms until `stop`, recording
/// each outcome. A create that timed out counts as not acknowledged (it may exist or not).
async fn write_numbered(
    client: kube::Client,
    via: &'static str,
    writes: Arc<Mutex<Vec<Write>>>,
    stop: CancellationToken,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut n = 0u64;
    while !stop.is_cancelled() {
        let name = format!("ack-{via}-{n}");
        let value = format!("{via} wrote {n}");
        let map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"ha-test": "write"}},
            "data": {"value": value},
        }))
        .unwrap();
        let started = Instant::now();
        let result =
            tokio::time::timeout(WRITE_TIMEOUT, api.create(&PostParams::default(), &map)).await;
        let acknowledged = matches!(result, Ok(Ok(_)));
        writes.lock().push(Write {
            name,
            value,
            via,
            started,
            acknowledged,
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One state of a Lease, as the watch delivered it.
#[derive(Clone, Debug)]
struct LeaseRecord {
    holder: String,
    acquired: Option<Timestamp>,
    renewed: Option<Timestamp>,
}

/// Records every state of the two Leases the watch on `client` delivers, until `stop`.
async fn watch_leases(
    client: kube::Client,
    records: Arc<Mutex<BTreeMap<String, Vec<LeaseRecord>>>>,
    stop: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let stream = watcher(leases, watcher::Config::default());
    let mut stream = Box::pin(stream.take_until(stop.cancelled_owned()));
    while let Some(event) = stream.next().await {
        let lease = match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => lease,
            _ => continue,
        };
        let Some(name) = lease.metadata.name.clone() else {
            continue;
        };
        let spec = lease.spec.unwrap_or_default();
        let record = LeaseRecord {
            holder: spec.holder_identity.unwrap_or_default(),
            acquired: spec.acquire_time.map(|t| t.0),
            renewed: spec.renew_time.map(|t| t.0),
        };
        records.lock().entry(name).or_default().push(record);
    }
}

/// One holder's term: from its acquire time to its last renewal the watch saw.
#[derive(Clone, Debug)]
struct Term {
    holder: String,
    acquired: Timestamp,
    last_renewed: Timestamp,
}

/// The terms of a Lease, in order, from its recorded states.
fn terms(records: &[LeaseRecord]) -> Vec<Term> {
    let mut terms: Vec<Term> = Vec::new();
    for record in records.iter().filter(|r| !r.holder.is_empty()) {
        let (Some(acquired), Some(renewed)) = (record.acquired, record.renewed) else {
            continue;
        };
        match terms.last_mut() {
            Some(term) if term.holder == record.holder && term.acquired == acquired => {
                term.last_renewed = term.last_renewed.max(renewed);
            }
            _ => terms.push(Term {
                holder: record.holder.clone(),
                acquired,
                last_renewed: renewed,
            }),
        }
    }
    terms
}

/// Asserts that no two terms overlap: each new holder acquired the Lease at least the renew
/// deadline after the previous holder's last renewal, by which time that one had stopped.
/// Returns the gaps.
fn assert_one_leader_at_a_time(lease: &str, terms: &[Term]) -> Vec<Duration> {
    terms
        .windows(2)
        .map(|pair| {
            let gap = pair[1].acquired.duration_since(pair[0].last_renewed);
            let gap = Duration::try_from(gap).unwrap_or_default();
            assert!(
                gap >= RENEW_DEADLINE,
                "{lease}: {} acquired {:?} after {}'s last renewal, within its renew deadline: {terms:#?}",
                pair[1].holder,
                gap,
                pair[0].holder
            );
            gap
        })
        .collect()
}

async fn holder(client: &kube::Client, name: &str) -> Option<String> {
    tugboat_testkit::kube::lease_holder(client, name, REQUEST_TIMEOUT).await
}

/// Which of `of` holds Lease `name` (by the PID in its identity).
fn leader(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    name: &str,
    of: &[Component; 2],
) -> Option<usize> {
    let pid = identity_pid(&runtime.block_on(holder(client, name))?)?;
    of.iter().position(|c| c.pid() == Some(pid))
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": REPLICAS,
            "minReadySeconds": MIN_READY_SECONDS,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": image}]}
            }
        }
    }))
    .unwrap()
}

/// Whether the rollout is done, as `kubectl rollout status` decides it.
fn rollout_done(deployment: &Deployment) -> bool {
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    deployment.metadata.generation <= status.observed_generation
        && status.updated_replicas == Some(REPLICAS)
        && status.replicas == Some(REPLICAS)
        && status.available_replicas == Some(REPLICAS)
}

async fn get_deployment(client: &kube::Client) -> Option<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    tokio::time::timeout(REQUEST_TIMEOUT, api.get("web"))
        .await
        .ok()?
        .ok()
}

/// Whether the rollout is still running, asking until an answer comes (a read that times out
/// right after a kill says nothing about the rollout).
fn rollout_in_progress(runtime: &tokio::runtime::Runtime, client: &kube::Client) -> bool {
    let mut deployment = None;
    wait_until("the Deployment to be read", Duration::from_secs(30), || {
        deployment = runtime.block_on(get_deployment(client));
        deployment.is_some()
    });
    deployment.is_some_and(|d| !rollout_done(&d))
}

/// The events the controller manager `identity` wrote.
fn events_by(runtime: &tokio::runtime::Runtime, client: &kube::Client, identity: &str) -> usize {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    runtime
        .block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            events.list(&ListParams::default()),
        ))
        .ok()
        .and_then(Result::ok)
        .map_or(0, |list| {
            list.items
                .iter()
                .filter(|e| e.reporting_instance.as_deref() == Some(identity))
                .count()
        })
}

#[test]
fn an_ha_cluster_loses_an_etcd_member_an_api_server_and_its_leaders_during_a_rollout() {
    let Some(mut etcd) = tugboat_testkit::etcd::spawn_etcd_cluster(3).unwrap() else {
        return;
    };
    let test_start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Futures made outside `block_on` (timeouts) need the runtime's context too.
    let _entered = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path();
    let etcd_flag = etcd.endpoints().join(",");
    // One agent on a machine of its own: a network namespace joined to this one by a veth
    // pair, reaching API server B at the host's end of it. Creating one needs root; without,
    // that agent runs here too, as the other.
    let (host_ip, ns_ip) = (Ipv4Addr::new(10, 252, 0, 1), Ipv4Addr::new(10, 252, 0, 2));
    let netns = match NetNs::create(std::process::id(), host_ip, ns_ip) {
        Ok(netns) => Some(netns),
        Err(error) => {
            eprintln!("node-2 runs on this machine's loopback, not in a namespace: {error:#}");
            None
        }
    };
    let b_ip = if netns.is_some() {
        host_ip
    } else {
        Ipv4Addr::LOCALHOST
    };
    let mut api_a = ApiServer::start_on_etcd(scratch, "api-a", &etcd_flag, None).unwrap();
    let api_b =
        ApiServer::start_on_etcd_at(scratch, "api-b", &etcd_flag, Some(&api_a.data_dir()), b_ip)
            .unwrap();
    let client_a = runtime.block_on(client(&api_a.kubeconfig()));
    let client_b = runtime.block_on(client(&api_b.kubeconfig()));

    let component = |what: &str, api: &ApiServer, name: &str| {
        Component::start(
            None,
            &[what, "--kubeconfig", api.kubeconfig().to_str().unwrap()],
            &log(scratch, name),
        )
        .unwrap()
    };
    // A's components first, so they lead and losing A costs both Leases.
    let controllers_a = component("controllers", &api_a, "controllers-a");
    let schedulers_a = component("scheduler", &api_a, "scheduler-a");
    wait_until("A's components to lead", Duration::from_secs(30), || {
        runtime
            .block_on(holder(&client_b, CONTROLLER_LEASE))
            .is_some()
            && runtime
                .block_on(holder(&client_b, SCHEDULER_LEASE))
                .is_some()
    });
    let mut controllers = [
        controllers_a,
        component("controllers", &api_b, "controllers-b"),
    ];
    let mut schedulers = [schedulers_a, component("scheduler", &api_b, "scheduler-b")];
    assert_eq!(
        leader(&runtime, &client_b, CONTROLLER_LEASE, &controllers),
        Some(0)
    );
    assert_eq!(
        leader(&runtime, &client_b, SCHEDULER_LEASE, &schedulers),
        Some(0)
    );

    let token_file = api_b.data_dir().join("join-token");
    let agent = |name: &str, netns: Option<&str>, node_ip: Ipv4Addr| {
        let node_ip = format!("--node-ip={node_ip}");
        Component::start(
            netns,
            &[
                "agent",
                "--runtime=sim",
                "--node-name",
                name,
                "--data-dir",
                scratch.join(name).to_str().unwrap(),
                "--server",
                &api_b.url(),
                "--token-file",
                token_file.to_str().unwrap(),
                "--kubelet-port=0",
                &node_ip,
            ],
            &log(scratch, name),
        )
        .unwrap()
    };
    let mut agents = match &netns {
        Some(netns) => [
            agent("node-1", None, Ipv4Addr::LOCALHOST),
            agent("node-2", Some(netns.name()), ns_ip),
        ],
        None => [
            agent("node-1", None, Ipv4Addr::LOCALHOST),
            agent("node-2", None, Ipv4Addr::LOCALHOST),
        ],
    };
    let nodes: Api<Node> = Api::all(client_b.clone());
    wait_until("both nodes Ready", Duration::from_secs(30), || {
        for agent in &mut agents {
            assert!(!agent.exited(), "an agent exited:\n{}", agent.log());
        }
        let Ok(Ok(list)) = runtime.block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            nodes.list(&ListParams::default()),
        )) else {
            return false;
        };
        list.items
            .iter()
            .filter(|node| {
                node.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count()
            == 2
    });

    if netns.is_some() {
        let node_2 = runtime.block_on(nodes.get("node-2")).unwrap();
        let addresses = node_2.status.and_then(|s| s.addresses).unwrap_or_default();
        assert!(
            addresses.iter().any(|a| a.address == ns_ip.to_string()),
            "node-2 registered from its namespace: {addresses:?}"
        );
    }

    // The Deployment at its first image, then the rollout under test.
    let deployments: Api<Deployment> = Api::namespaced(client_b.clone(), "default");
    runtime
        .block_on(deployments.create(&PostParams::default(), &deployment("app:v1")))
        .unwrap();
    wait_until(
        "the first image rolled out",
        Duration::from_secs(60),
        || {
            runtime
                .block_on(get_deployment(&client_b))
                .is_some_and(|d| rollout_done(&d))
        },
    );

    let stop = CancellationToken::new();
    let writes = Arc::new(Mutex::new(Vec::new()));
    let lease_records = Arc::new(Mutex::new(BTreeMap::new()));
    let background = [
        runtime.spawn(write_numbered(
            client_a.clone(),
            "a",
            Arc::clone(&writes),
            stop.clone(),
        )),
        runtime.spawn(write_numbered(
            client_b.clone(),
            "b",
            Arc::clone(&writes),
            stop.clone(),
        )),
        runtime.spawn(watch_leases(
            client_b.clone(),
            Arc::clone(&lease_records),
            stop.clone(),
        )),
    ];
    std::thread::sleep(Duration::from_secs(1));
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}}});
    runtime
        .block_on(deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)))
        .unwrap();
    let rollout_started = Instant::now();
    let in_progress = || rollout_in_progress(&runtime, &client_b);

    // 1. The etcd leader member dies; the other two elect a leader and carry on.
    let etcd_leader = etcd.wait_for_leader(Duration::from_secs(10)).unwrap();
    assert!(in_progress(), "the rollout ended before the first kill");
    etcd.member_mut(etcd_leader).kill().unwrap();
    let new_etcd_leader = etcd.wait_for_leader(Duration::from_secs(15)).unwrap();
    assert_ne!(new_etcd_leader, etcd_leader);
    eprintln!("etcd member {etcd_leader} (the leader) killed; member {new_etcd_leader} leads");
    std::thread::sleep(Duration::from_secs(2));

    // 2. API server A dies, and with it the connection of the leading controller manager and
    // scheduler: the standbys on B take over once the Leases run out.
    assert!(in_progress(), "the rollout ended before API server A died");
    api_a.kill();
    let a_died = Instant::now();
    let controllers_moved = wait_until(
        "the controller manager on B to lead",
        FAILOVER_TIMEOUT,
        || leader(&runtime, &client_b, CONTROLLER_LEASE, &controllers) == Some(1),
    );
    let schedulers_moved = wait_until("the scheduler on B to lead", FAILOVER_TIMEOUT, || {
        leader(&runtime, &client_b, SCHEDULER_LEASE, &schedulers) == Some(1)
    });
    eprintln!(
        "API server A killed: controllers on B lead after {controllers_moved:?}, scheduler on B after {schedulers_moved:?}"
    );
    // A comes back; its components, which kept trying, are the standbys now.
    let a_back_from = Instant::now();
    api_a.restart().unwrap();
    for component in controllers.iter_mut().chain(schedulers.iter_mut()) {
        assert!(
            !component.exited(),
            "a component exited:\n{}",
            component.log()
        );
    }

    // 3. The leading controller manager (B's) dies: A's takes over through A. B's must have
    // acted first (its events name it), else this is only a failover between two idle standbys.
    let controller_b = runtime
        .block_on(holder(&client_b, CONTROLLER_LEASE))
        .unwrap();
    wait_until(
        "the controller manager on B to act",
        Duration::from_secs(30),
        || events_by(&runtime, &client_b, &controller_b) > 0,
    );
    assert!(
        in_progress(),
        "the rollout ended before the controller manager died"
    );
    controllers[1].kill();
    let took = wait_until(
        "the controller manager on A to lead again",
        FAILOVER_TIMEOUT,
        || leader(&runtime, &client_b, CONTROLLER_LEASE, &controllers) == Some(0),
    );
    eprintln!("leading controller manager killed: the standby leads after {took:?}");

    // 4. The leading scheduler (B's) dies: A's takes over.
    let rollout_running_at_last_kill = in_progress();
    schedulers[1].kill();
    let took = wait_until("the scheduler on A to lead again", FAILOVER_TIMEOUT, || {
        leader(&runtime, &client_b, SCHEDULER_LEASE, &schedulers) == Some(0)
    });
    eprintln!(
        "leading scheduler killed (rollout still running: {rollout_running_at_last_kill}): the standby leads after {took:?}"
    );

    // The rollout completes, with exactly the new pods.
    wait_until("the rollout to complete", Duration::from_secs(60), || {
        runtime
            .block_on(get_deployment(&client_a))
            .is_some_and(|d| rollout_done(&d))
    });
    eprintln!(
        "rollout complete {:?} after the new image",
        rollout_started.elapsed()
    );
    let pods: Api<Pod> = Api::namespaced(client_a.clone(), "default");
    let pods = runtime
        .block_on(pods.list(&ListParams::default().labels("app=web")))
        .unwrap();
    let live: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), REPLICAS as usize, "{:#?}", pods.items);
    for pod in &live {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("app:v2"));
        assert!(spec.node_name.is_some(), "{pod:#?}");
    }

    // Stop writing; every acknowledged write is there, through either API server.
    stop.cancel();
    for task in background {
        runtime
            .block_on(tokio::time::timeout(Duration::from_secs(10), task))
            .unwrap()
            .unwrap();
    }
    let writes = writes.lock().clone();
    for client in [&client_a, &client_b] {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let stored: BTreeMap<String, String> = runtime
            .block_on(maps.list(&ListParams::default().labels("ha-test=write")))
            .unwrap()
            .items
            .into_iter()
            .map(|map| {
                let value = map
                    .data
                    .unwrap_or_default()
                    .remove("value")
                    .unwrap_or_default();
                (map.metadata.name.unwrap_or_default(), value)
            })
            .collect();
        for write in writes.iter().filter(|w| w.acknowledged) {
            assert_eq!(
                stored.get(&write.name),
                Some(&write.value),
                "acknowledged write {} lost",
                write.name
            );
        }
    }
    let acknowledged = |via: &str| {
        writes
            .iter()
            .filter(|w| w.via == via && w.acknowledged)
            .count()
    };
    eprintln!(
        "writes: {} through A ({} acknowledged), {} through B ({} acknowledged)",
        writes.iter().filter(|w| w.via == "a").count(),
        acknowledged("a"),
        writes.iter().filter(|w| w.via == "b").count(),
        acknowledged("b")
    );
    // Clients of B kept working while A was down.
    let during_outage: Vec<&Write> = writes
        .iter()
        .filter(|w| w.via == "b" && w.started > a_died && w.started < a_back_from)
        .collect();
    assert!(during_outage.len() >= 20, "{during_outage:?}");
    assert!(
        during_outage.iter().all(|w| w.acknowledged),
        "writes through B failed while A was down: {:?}",
        during_outage
            .iter()
            .filter(|w| !w.acknowledged)
            .collect::<Vec<_>>()
    );

    // One leader at a time, by the Leases' history.
    let lease_records = lease_records.lock().clone();
    let mut holders = BTreeMap::new();
    for lease in [CONTROLLER_LEASE, SCHEDULER_LEASE] {
        let terms = terms(lease_records.get(lease).map_or(&[][..], Vec::as_slice));
        assert!(
            terms.len() >= 3,
            "{lease}: two failovers expected: {terms:#?}"
        );
        let gaps = assert_one_leader_at_a_time(lease, &terms);
        eprintln!(
            "{lease}: holders {:?}, gaps {gaps:?}",
            terms.iter().map(|t| &t.holder).collect::<Vec<_>>()
        );
        holders.insert(lease, terms);
    }
    // ... and by the controller manager's own writes: each event names its writer, and was
    // written while that writer held the Lease (its term extends by the renew deadline).
    let events: Api<Event> = Api::namespaced(client_b.clone(), "default");
    let events = runtime
        .block_on(events.list(&ListParams::default()))
        .unwrap();
    let controller_terms = &holders[CONTROLLER_LEASE];
    let mut attributed = 0;
    for event in &events.items {
        let Some(instance) = event.reporting_instance.as_deref() else {
            continue;
        };
        let mut own_terms = controller_terms
            .iter()
            .filter(|t| t.holder == instance)
            .peekable();
        if own_terms.peek().is_none() {
            continue;
        }
        let at = event.event_time.as_ref().map(|t| t.0).unwrap();
        let within = |term: &Term| {
            let latest = term
                .last_renewed
                .checked_add(jiff_span(RENEW_DEADLINE))
                .unwrap();
            at >= term.acquired && at <= latest
        };
        assert!(
            own_terms.any(within),
            "event {:?} by {instance} at {at} outside its terms: {controller_terms:#?}",
            event.metadata.name
        );
        attributed += 1;
    }
    let leaders_that_wrote: std::collections::BTreeSet<&str> = events
        .items
        .iter()
        .filter_map(|e| e.reporting_instance.as_deref())
        .filter(|i| controller_terms.iter().any(|t| t.holder == *i))
        .collect();
    eprintln!(
        "{attributed} controller-manager events, each inside its writer's term; writers {leaders_that_wrote:?}"
    );
    assert!(
        leaders_that_wrote.len() >= 2,
        "events from at least two successive controller-manager leaders: {attributed} events, {leaders_that_wrote:?}"
    );

    for component in controllers
        .iter_mut()
        .chain(schedulers.iter_mut())
        .chain(agents.iter_mut())
    {
        let _ = component.stop();
    }
    // Meant to stay under 2 minutes; not asserted, as a loaded machine stretches it.
    eprintln!("the whole test took {:?}", test_start.elapsed());
    drop(api_b);
    drop(api_a);
    drop(etcd);
    drop(netns);
}

fn jiff_span(duration: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(duration).unwrap()
}
