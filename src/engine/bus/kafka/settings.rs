//! The Kafka bus's settings, all in its URL so that `--bus`, `CRM_BUS` and the config file's
//! `bus` carry them alike:
//! `kafka://host:port[,host:port…][?partitions=N&replication=N&group_prefix=P&group.KIND=ID&topic_prefix=P&session_timeout_ms=MS&publish_timeout_ms=MS&rdkafka.PROPERTY=VALUE]`.
//!
//! `rdkafka.PROPERTY=VALUE` passes a librdkafka property to every client (security settings
//! such as `rdkafka.security.protocol=SASL_SSL`, tuning); crm's own settings win over them.

use crate::engine::error::{Error, Result};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port` of each bootstrap broker.
    pub brokers: Vec<String>,
    /// Partitions of each topic the bus creates (existing topics are left as they are).
    pub partitions: i32,
    /// Replication factor of the topics the bus creates.
    pub replication: i32,
    /// Prepended to a worker kind to name its consumer group (`crm.` + `sender`).
    pub group_prefix: String,
    /// A worker kind's group id, replacing the prefixed one (`group.sender=billing-senders`).
    pub groups: HashMap<String, String>,
    /// Prepended to every topic name (`staging.` + `campaign.jobs`), so that several installs
    /// can share a cluster; empty by default, which keeps the documented names.
    pub topic_prefix: String,
    /// How long a silent consumer keeps its partitions (the broker's liveness check).
    pub session_timeout: Duration,
    /// librdkafka properties given as `rdkafka.NAME=VALUE`, for every client.
    pub client_properties: Vec<(String, String)>,
    /// How long the start-up check waits for a broker to answer.
    pub connect_timeout: Duration,
    /// How long a publish may wait for the brokers (librdkafka holds and retries it meanwhile)
    /// before it fails; the worker's step then fails and its input comes back after its lease.
    pub publish_timeout: Duration,
}

impl KafkaSettings {
    pub const DEFAULT_PARTITIONS: i32 = 6;

    /// Reads a `kafka://` URL.
    pub fn parse(url: &str) -> Result<KafkaSettings> {
        let usage = |why: String| Error::Usage(format!("bus '{url}': {why}"));
        let rest = url.trim().strip_prefix("kafka://").ok_or_else(|| usage("expected kafka://HOST:PORT".into()))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let brokers: Vec<String> =
            hosts.trim_end_matches('/').split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
        if brokers.is_empty() {
            return Err(usage("name at least one broker, as kafka://HOST:PORT".into()));
        }
        for b in &brokers {
            let port = b.rsplit_once(':').map(|(_, p)| p);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(usage(format!("broker '{b}' needs a port (HOST:PORT)")));
            }
        }
        let mut s = KafkaSettings {
            brokers,
            partitions: Self::DEFAULT_PARTITIONS,
            replication: 1,
            group_prefix: "crm.".into(),
            groups: HashMap::new(),
            topic_prefix: String::new(),
            client_properties: Vec::new(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(60),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |min: i64| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| usage(format!("{k} must be a number ≥ {min}")))
            };
            match k {
                "partitions" => s.partitions = i32::try_from(number(1)?).unwrap_or(i32::MAX),
                "replication" => s.replication = i32::try_from(number(1)?).unwrap_or(i32::MAX),
                "group_prefix" => s.group_prefix = v.to_string(),
                "topic_prefix" => s.topic_prefix = v.to_string(),
                "session_timeout_ms" => s.session_timeout = Duration::from_millis(number(1000)?.unsigned_abs()),
                "connect_timeout_ms" => s.connect_timeout = Duration::from_millis(number(100)?.unsigned_abs()),
                "publish_timeout_ms" => s.publish_timeout = Duration::from_millis(number(1000)?.unsigned_abs()),
                _ if k.starts_with("rdkafka.") && k.len() > "rdkafka.".len() => {
                    s.client_properties.push((k["rdkafka.".len()..].to_string(), v.to_string()));
                }
                _ => match k.strip_prefix("group.") {
                    Some(kind) if !kind.is_empty() && !v.is_empty() => {
                        s.groups.insert(kind.to_string(), v.to_string());
                    }
                    _ => return Err(usage(format!("unknown setting '{k}'"))),
                },
            }
        }
        Ok(s)
    }

    /// The consumer group id of worker kind `kind` consuming `topic`: `crm.sender` for the
    /// topic that kind works (or the configured id), and `crm.KIND.TOPIC` for any other, so a
    /// group never spans topics (a member that stops polling one topic would stall a
    /// rebalance of the others).
    pub fn group_id(&self, kind: &str, topic: &str) -> String {
        let own = crate::engine::bus::group::for_topic(topic) == Some(kind);
        match self.groups.get(kind) {
            Some(id) if own => id.clone(),
            _ if own => format!("{}{kind}", self.group_prefix),
            _ => format!("{}{kind}.{topic}", self.group_prefix),
        }
    }

    /// The name of topic `t` on the cluster.
    pub fn topic_name(&self, t: &str) -> String {
        format!("{}{t}", self.topic_prefix)
    }

    /// The brokers as librdkafka's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.brokers.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_brokers_and_settings() {
        let s =
            KafkaSettings::parse("kafka://a:9092, b:9093/?partitions=12&group.sender=billing&session_timeout_ms=6000&publish_timeout_ms=5000")
                .expect("parses");
        assert_eq!(s.brokers, ["a:9092", "b:9093"]);
        assert_eq!((s.partitions, s.session_timeout), (12, Duration::from_secs(6)));
        assert_eq!(s.publish_timeout, Duration::from_secs(5));
        assert_eq!(s.group_id("sender", "campaign.send_jobs"), "billing");
        assert_eq!(s.group_id("expander", "campaign.jobs"), "crm.expander");
        assert_eq!(s.group_id("expander", "other"), "crm.expander.other", "a group never spans topics");
        for bad in [
            "kafka://",
            "kafka://host",
            "kafka://h:1?partitions=0",
            "kafka://h:1?colour=red",
            "kafka://h:1?publish_timeout_ms=5",
            "embedded",
        ] {
            assert!(matches!(KafkaSettings::parse(bad), Err(Error::Usage(_))), "{bad}");
        }
    }
}
