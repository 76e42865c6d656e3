//! The floor for the Kafka benchmark (`benches/kafka.sh`): raw rdkafka, no crm, producing N
//! send-job-sized messages to a fresh topic and consuming them back in one group, the way the
//! pipeline's busiest hop does (idempotent producer, acks=all; manual commits).
//!
//!     cargo run --release --example kafka_raw -- HOST:PORT [N]

#[cfg(feature = "kafka")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::{Duration, Instant};

    let mut args = std::env::args().skip(1);
    let brokers = args.next().ok_or("usage: kafka_raw HOST:PORT [N]")?;
    let n: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let topic = format!("bench.raw.{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        admin.create_topics(&[NewTopic::new(&topic, 6, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()?;
        let start = Instant::now();
        let mut pending = Vec::with_capacity(n);
        for i in 0..n {
            let payload = format!(
                r#"{{"send_id":"c1-{i:08}","campaign_id":1,"lead_id":{i},"to":"+4477009{i:05}","message":"Hi Ada, 20% off this week","attempt":1}}"#
            );
            let key = i.to_string();
            loop {
                match producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload)) {
                    Ok(f) => break pending.push(f),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }
        for f in pending {
            f.await?.map_err(|(e, _)| e)?;
        }
        let produced = start.elapsed();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("{topic}.group"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let start = Instant::now();
        let (mut got, mut since_commit) = (0, 0);
        let mut first = None;
        while got < n {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m?;
                first.get_or_insert_with(|| start.elapsed());
                got += 1;
                since_commit += 1;
                if since_commit == 500 || got == n {
                    consumer.commit_consumer_state(CommitMode::Sync)?;
                    since_commit = 0;
                }
            }
        }
        let consumed = start.elapsed();
        println!(
            "raw rdkafka, {n} messages: produce {:.2} s ({:.0}/s), consume+commit {:.2} s ({:.0}/s, incl. group join; first message after {:.2} s)",
            produced.as_secs_f64(),
            n as f64 / produced.as_secs_f64(),
            consumed.as_secs_f64(),
            n as f64 / consumed.as_secs_f64(),
            first.unwrap_or_default().as_secs_f64()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

#[cfg(not(feature = "kafka"))]
fn main() {
    eprintln!("kafka_raw needs the kafka feature");
}
