//! The crash story of `tests/campaigns_cli.rs` on the Kafka bus: real `crm worker` processes on
//! the shared test broker (tansu, see `src/engine/bus/kafka/test_server.rs`), the send worker
//! SIGKILLed and restarted, then two send workers in one consumer group. Every eligible lead is
//! accepted by the simulator exactly once and the campaign completes — with the SQLite store,
//! and with the MongoDB store when a MongoDB-wire server is at hand. Each run has topics and
//! consumer groups of its own (`topic_prefix`, `group_prefix`).

#![cfg(feature = "kafka")]

mod common;

#[path = "../src/engine/test_process.rs"]
pub mod test_process;
/// `crate::engine::test_process`, as the test-server launchers below name it inside the crate.
mod engine {
    pub use super::test_process;
}

#[path = "../src/engine/bus/kafka/test_server.rs"]
mod kafka_server;

use common::Crm;
use common::campaigns::{
    assert_sim_accepted, create_campaign, killed_and_competing_senders_send_once, print_log_tails, start_sim, stat,
    status, wait_completed, write_leads,
};
use common::processes::start_worker;
use common::proxy::TcpProxy;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Leads in the campaign (every seventh has no phone, see `write_leads`).
const LEADS: usize = 6000;
/// Leads in the MongoDB run.
#[cfg(feature = "mongodb")]
const MONGO_LEADS: usize = 700;

/// When the sender is killed, after it has sent its first message (its consumer joined the
/// group, which takes seconds on tansu).
const KILL_AFTER_MS: std::ops::Range<u64> = 300..1500;

/// A bus URL on the test broker with topics and groups no other run uses, and its topic prefix.
fn fresh_bus(broker: &str) -> (String, String) {
    let prefix = format!("{}.", kafka_server::fresh_name("e2e"));
    let settings = kafka_server::CLIENT_SETTINGS;
    (format!("kafka://{broker}?{settings}&partitions=4&topic_prefix={prefix}&group_prefix={prefix}"), prefix)
}

/// The Python with `confluent-kafka` that `.ci/run` installs (or `CRM_KAFKA_PYTHON`).
fn confluent_python() -> Option<PathBuf> {
    let path = std::env::var_os("CRM_KAFKA_PYTHON").map_or_else(|| PathBuf::from(VENV_PYTHON), PathBuf::from);
    path.is_file().then_some(path)
}

const VENV_PYTHON: &str = "/var/tmp/crm-venv-kafka/bin/python";

#[test]
fn killed_and_competing_senders_send_once_on_kafka_and_sqlite() {
    let Some(broker) = kafka_server::broker() else { return };
    let (bus, prefix) = fresh_bus(&broker);
    killed_and_competing_senders_send_once(&Crm::with_backends(&bus, None), LEADS, KILL_AFTER_MS, 20);
    // An independent client reads every topic of the run and checks the documented JSON.
    let Some(python) = confluent_python() else {
        assert!(std::env::var_os("CI").is_none(), "CI needs confluent-kafka ({VENV_PYTHON}, see .ci/run)");
        eprintln!(
            "skipped the confluent-kafka check: no {VENV_PYTHON} (python3 -m venv /var/tmp/crm-venv-kafka && /var/tmp/crm-venv-kafka/bin/pip install confluent-kafka)"
        );
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-topics-check.py");
    let eligible = (0..LEADS).filter(|i| i % 7 != 6).count().to_string();
    let out = Command::new(python)
        .args([script, &broker, &prefix, "--expect-send-jobs", &eligible])
        .output()
        .expect("run the confluent-kafka check");
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!("{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the topics hold payloads another client cannot read as documented:\n{said}");
    for topic in ["campaign.jobs", "campaign.send_jobs", "campaign.status_updates"] {
        let line = said.lines().find(|l| l.contains(&format!("\"{topic}\""))).expect("a line per topic");
        assert!(!line.contains("\"messages\": 0"), "{topic} was read empty: {line}");
    }
}

/// Leads in the broker restart run.
const RESTART_LEADS: usize = 2000;

/// The brokers go away while the three workers are sending — `outage` takes them away and
/// brings them back — and the workers ride it out: their publishes, commits and heartbeats
/// fail meanwhile, and the campaign completes with every eligible lead accepted exactly once.
/// `broker` is what clients connect to; `settings` are added to the bus URL. Returns the
/// sandbox, its workers stopped.
fn outage_loses_nothing(broker: &str, settings: &str, outage: impl FnOnce()) -> Crm {
    let (bus, _) = fresh_bus(broker);
    let crm = Crm::with_backends(&format!("{bus}{settings}"), None);
    let eligible = write_leads(&crm, RESTART_LEADS) as u64;
    let id = create_campaign(&crm);
    let (_sim, url) = start_sim(&crm, &["--latency-ms", "20"]);
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let _expand = start_worker(&crm, &["expand"], "expand.log");
    let _status = start_worker(&crm, &["status"], "status.log");
    let send_args = ["send", "--sim-url", &url, "--rate-per-minute", "6000", "--concurrency", "8"];
    let _send = start_worker(&crm, &send_args, "send.log");
    let started = Instant::now() + Duration::from_secs(60);
    while stat(&status(&crm, id), "sent") < 20 {
        assert!(Instant::now() < started, "no sends within a minute: {}", status(&crm, id));
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = status(&crm, id);
    eprintln!("brokers going: {before}");
    outage();
    eprintln!("brokers back: {}", status(&crm, id));
    let waited = std::panic::catch_unwind(|| wait_completed(&crm, id, Duration::from_secs(150)));
    let done = waited.unwrap_or_else(|panic| {
        print_log_tails(&crm, 60);
        std::panic::resume_unwind(panic)
    });
    assert!(stat(&before, "sent") < eligible, "the outage came after the last send: {before}");
    assert_eq!(stat(&done, "sent"), eligible, "{done}");
    assert_eq!(stat(&done, "failed") + stat(&done, "uncertain") + stat(&done, "pending"), 0, "{done}");
    assert_sim_accepted(&url, eligible);
    crm
}

/// A broker restart mid-run: the broker (its data in a SQLite file) is SIGKILLed, stays away
/// for five seconds and starts again on the same port; librdkafka holds the producers'
/// messages meanwhile and the consumers rejoin their groups.
#[test]
fn a_broker_restart_mid_run_loses_nothing() {
    let data = tempfile::tempdir().expect("a data dir for the broker");
    let Some(mut broker) = kafka_server::RestartableBroker::start(data.path()) else { return };
    let addr = broker.addr();
    let _ = outage_loses_nothing(&addr, "", || {
        broker.kill();
        std::thread::sleep(Duration::from_secs(5));
        broker.restart();
    });
}

/// The brokers out of reach (a network outage: connections reset, new ones refused) for longer
/// than a publish may wait (`publish_timeout_ms`, 3 s here, 60 s by default): publishes fail,
/// so the workers' steps fail halfway, and what they had in hand comes back to them when its
/// lease runs out (the expander's chunk after 60 s) — without a restart of theirs. (A broker
/// *restart* this long cannot be tested on tansu 0.6: its SQLite storage panics on the
/// idempotent producer's epoch bump that follows a timed-out publish.)
#[test]
fn a_broker_outage_longer_than_a_publish_may_wait_loses_nothing() {
    let Ok(port) = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()) else {
        panic!("no free port")
    };
    let Some(broker) = kafka_server::RestartableBroker::behind_proxy(port) else { return };
    let proxy = TcpProxy::start(port, &broker.listener());
    let crm = outage_loses_nothing(&broker.addr(), "&publish_timeout_ms=1000", || {
        proxy.cut();
        std::thread::sleep(Duration::from_secs(4));
        proxy.restore();
    });
    let logs = ["expand.log", "send.log"].map(|log| std::fs::read_to_string(crm.path(log)).unwrap_or_default());
    let failed = logs.iter().map(|log| log.matches("failed; retrying shortly").count()).sum::<usize>();
    assert!(failed > 0, "the outage should have failed some steps:\n{}", logs.join("\n"));
}

#[cfg(feature = "mongodb")]
#[path = "../src/engine/store/mongo/test_server.rs"]
mod mongo_server;

/// The same story on Kafka and the MongoDB store (SecantusDB, or `CRM_TEST_MONGODB_URI`). `crm`
/// shuts its MongoDB clients down before the runtime ends (`store::mongo::shutdown_clients`), so
/// the driver's pool tasks no longer panic at exit.
#[cfg(feature = "mongodb")]
#[test]
fn killed_and_competing_senders_send_once_on_kafka_and_mongodb() {
    let Some(broker) = kafka_server::broker() else { return };
    let Some(base) = mongo_server::base_uri() else { return };
    let database = mongo_server::fresh_database("crm_kafka_e2e");
    let store = mongo_server::with_database(&base, &database);
    let (bus, _) = fresh_bus(&broker);
    // SecantusDB (a Python server) is slow to import into: a smaller campaign, and slower
    // sends (~130 a second), or the sender finishes between kills and none interrupts a send.
    killed_and_competing_senders_send_once(&Crm::with_backends(&bus, Some(store)), MONGO_LEADS, KILL_AFTER_MS, 60);
    mongo_server::drop_database(&base, &database);
}

/// The dashboard over the scale-out backends: `crm tui` on Kafka and the MongoDB store (the
/// SQLite store when no MongoDB-wire server is at hand) shows the running campaign, its queues
/// as consumer lag, the store it reads, and follows the campaign to COMPLETED while a worker
/// sends it; `q` exits 0.
#[cfg(feature = "tui")]
#[test]
fn the_dashboard_follows_a_campaign_on_kafka() {
    let Some(broker) = kafka_server::broker() else { return };
    let (bus, _) = fresh_bus(&broker);
    #[cfg(feature = "mongodb")]
    let mongo = mongo_server::base_uri().map(|base| (mongo_server::fresh_database("crm_tui"), base));
    #[cfg(not(feature = "mongodb"))]
    let mongo: Option<(String, String)> = None;
    #[cfg(feature = "mongodb")]
    let store = mongo.as_ref().map(|(database, base)| mongo_server::with_database(base, database));
    #[cfg(not(feature = "mongodb"))]
    let store: Option<String> = None;
    let crm = Crm::with_backends(&bus, store);
    let eligible = write_leads(&crm, 140) as u64;
    let id = create_campaign(&crm);
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let Some(tmux) = common::tmux::start_tui(&crm, 120, 40) else { return };
    let screen = tmux.wait_within("promo  RUNNING", Duration::from_secs(30)).unwrap_or_else(|s| panic!("{s}"));
    assert!(screen.contains("consumer lag"), "Kafka queues are shown as lag:\n{screen}");
    if mongo.is_some() {
        assert!(screen.contains("mongodb://"), "the status bar names the store:\n{screen}");
    }
    // Selected on the campaigns screen, the campaign stays on the dashboard once completed.
    tmux.keys("2");
    tmux.wait_for("Campaigns (1)");
    tmux.keys("1");
    tmux.wait_for("promo  RUNNING");
    let (_sim, url) = start_sim(&crm, &[]);
    let _worker = start_worker(
        &crm,
        &["all", "--sim-url", &url, "--rate-per-minute", "0", "--webhook-listen", "127.0.0.1:0"],
        "worker.log",
    );
    let done = tmux.wait_within("promo  COMPLETED", Duration::from_secs(120)).unwrap_or_else(|screen| {
        print_log_tails(&crm, 40);
        panic!("the dashboard never showed the campaign completed:\n{screen}")
    });
    assert!(done.contains(" 140/140") && done.contains(&format!("sent {eligible}")), "{done}");
    assert_sim_accepted(&url, eligible);
    tmux.keys("q");
    assert!(tmux.wait_for("EXIT=").contains("EXIT=0"));
    #[cfg(feature = "mongodb")]
    if let Some((database, base)) = &mongo {
        mongo_server::drop_database(base, database);
    }
}
