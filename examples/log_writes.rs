//! The communication logs' write path on the SQLite store, without a bus, a channel or another
//! process: a campaign's logs inserted in chunks of 1,000, claimed and marked sent in batches
//! of 1,024 (random vendor ids), then `delivered` and `read` receipts in batches of 200 — the
//! store calls a 100,000-lead campaign makes, timed per phase. Each round runs it twice, in a
//! fresh store each time: once with the logs' indexes of schema 11 (`(campaign_id, status)` and
//! `(updated_at)`: "old") and once with today's (`(campaign_id, status, updated_at)` and
//! `(lead_id)`: "new"), so one run compares both, alternating.
//!
//! The vendor ids are the simulator's (its receipts name the send id, so the ids are not
//! indexed); `--keyed` indexes them for lookups by vendor id, as Twilio's and WhatsApp's are.
//!
//!   cargo run --release --example log_writes -- [LEADS] [ROUNDS] [--keyed]
use crm::engine::campaign::{NewCampaign, NewLog, SendIds, SendStatus};
use crm::engine::store::campaigns::{CampaignStore, LogUpdate};
use crm::engine::store::sqlite::SqliteStore;
use std::path::Path;
use std::time::{Duration, Instant};

const OLD: &str = "DROP INDEX communication_logs_status; DROP INDEX communication_logs_lead;
    CREATE INDEX communication_logs_status ON communication_logs (campaign_id, status);
    CREATE INDEX communication_logs_updated ON communication_logs (updated_at);";

async fn round(dir: &Path, leads: i64, old: bool, keyed: bool) -> [Duration; 4] {
    let path = dir.join(if old { "old.db" } else { "new.db" });
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    drop(SqliteStore::open(&path).await.expect("create"));
    if old {
        rusqlite::Connection::open(&path).expect("open").execute_batch(OLD).expect("old indexes");
    }
    let store = SqliteStore::open(&path).await.expect("open");
    let campaign = store
        .create_campaign(NewCampaign {
            name: "bench".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: "sim".into(),
            created_by: None,
            send_ids: SendIds::Sequential { salt: 7 },
        })
        .await
        .expect("campaign")
        .id;
    let ids: Vec<String> = (1..=leads).map(|l| format!("c{campaign}-{l:08}")).collect();
    let mut times = [Duration::ZERO; 4];
    let t = Instant::now();
    for (chunk, lead0) in ids.chunks(1000).zip((1..).step_by(1000)) {
        let logs: Vec<NewLog> = chunk
            .iter()
            .zip(lead0..)
            .map(|(id, lead_id)| NewLog { send_id: id.clone(), lead_id, skip_reason: None })
            .collect();
        store.insert_logs(campaign, "sim", &logs).await.expect("insert");
    }
    times[0] = t.elapsed();
    let pid = |id: &str| format!("sim-{:016x}", xxhash_rust::xxh3::xxh3_64(id.as_bytes()));
    let update = |id: &String, status, provider: bool| LogUpdate {
        find_by_provider_id: keyed,
        send_id: id.clone(),
        status,
        provider_message_id: provider.then(|| pid(id)),
        error: None,
    };
    let t = Instant::now();
    for batch in ids.chunks(1024) {
        store.claim_logs(batch, Duration::from_secs(30)).await.expect("claim");
        let sent: Vec<LogUpdate> = batch.iter().map(|id| update(id, SendStatus::Sent, true)).collect();
        store.apply_log_updates(&sent).await.expect("sent");
    }
    times[1] = t.elapsed();
    for (i, status) in [(2, SendStatus::Delivered), (3, SendStatus::Read)] {
        let t = Instant::now();
        for batch in ids.chunks(200) {
            let receipts: Vec<LogUpdate> = batch.iter().map(|id| update(id, status, true)).collect();
            store.apply_log_updates(&receipts).await.expect("receipt");
        }
        times[i] = t.elapsed();
    }
    times
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let leads: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let keyed = args.next().as_deref() == Some("--keyed");
    let dir = tempfile::tempdir().expect("tempdir");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut totals = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        for old in [true, false] {
            let t = round(dir.path(), leads, old, keyed).await;
            let total: f64 = t.iter().map(|d| ms(*d)).sum();
            totals[usize::from(!old)].push(total);
            println!(
                "round {r} {:>3}: insert {:6.0} ms, claim+sent {:6.0} ms, delivered {:6.0} ms, read {:6.0} ms, total {total:6.0} ms",
                if old { "old" } else { "new" },
                ms(t[0]),
                ms(t[1]),
                ms(t[2]),
                ms(t[3])
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (old, new) = (median(&mut totals[0]), median(&mut totals[1]));
    println!("median total: old indexes {old:.0} ms, new {new:.0} ms, new/old {:.2}", new / old);
}
