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
use common::campaigns::killed_and_competing_senders_send_once;
use std::path::PathBuf;
use std::process::Command;

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
    killed_and_competing_senders_send_once(&Crm::with_backends(&bus, None), LEADS, KILL_AFTER_MS);
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
    // SecantusDB (a Python server) records a few sends a second here: a smaller campaign.
    killed_and_competing_senders_send_once(&Crm::with_backends(&bus, Some(store)), MONGO_LEADS, KILL_AFTER_MS);
    mongo_server::drop_database(&base, &database);
}
