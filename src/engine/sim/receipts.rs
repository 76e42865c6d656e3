//! Receipt delivery: one task holds every scheduled receipt in a time-ordered heap, wakes when
//! the earliest is due, and POSTs what is due to each callback URL — one receipt per request, or
//! JSON arrays of up to `receipt_batch` when batching is on (which is what lets 100k messages'
//! receipts keep up). Failed callbacks are retried with doubling delays, then dropped and logged.
//!
//! Receipts of one message are due in order (delivered, then read) but are sent by concurrent
//! requests, so a callback may still see them out of order, as with a real vendor; with
//! `read_after` below `delivered_after` they are out of order on purpose.

use super::api::Receipt;
use super::state::Counters;
use crate::engine::lead::format_time;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A receipt waiting for its time.
#[derive(Debug)]
pub(crate) struct Scheduled {
    pub due: Instant,
    pub callback: Arc<str>,
    pub receipt: Receipt,
}

/// Heap entry: earliest due first, then first scheduled.
struct Pending {
    seq: u64,
    item: Scheduled,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest is on top.
        (other.item.due, other.seq).cmp(&(self.item.due, self.seq))
    }
}

/// How callbacks are called.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub client: reqwest::Client,
    pub batch: usize,
    pub attempts: u32,
    pub backoff: Duration,
    pub counters: Arc<Counters>,
}

/// Callback POSTs in flight at once; beyond this the dispatcher waits (backpressure).
const MAX_IN_FLIGHT: usize = 64;

/// Runs until `stop` fires (or every sender is gone). Receipts not yet sent are then dropped:
/// the simulator is a test double, and a stopped vendor sends nothing more.
pub(crate) async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<Scheduled>,
    delivery: Delivery,
    stop: oneshot::Receiver<()>,
) {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    let mut in_flight = JoinSet::new();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::pin!(stop);
    'run: loop {
        let next_due = heap.peek().map(|p: &Pending| p.item.due);
        tokio::select! {
            biased;
            _ = &mut stop => break 'run,
            received = rx.recv() => match received {
                Some(item) => {
                    heap.push(Pending { seq, item });
                    seq += 1;
                    // Drain what else is queued without going round the select each time.
                    while let Ok(item) = rx.try_recv() {
                        heap.push(Pending { seq, item });
                        seq += 1;
                    }
                }
                None => break,
            },
            _ = sleep_until(next_due), if next_due.is_some() => {
                let stamp = format_time(&chrono::Utc::now());
                for (callback, receipts) in take_due(&mut heap, Instant::now(), &stamp) {
                    for chunk in receipts.chunks(delivery.batch.max(1)) {
                        // Waiting for a free slot must not outlast a stop: with a stalled
                        // callback every slot stays taken for minutes of retries.
                        let permit = tokio::select! {
                            biased;
                            _ = &mut stop => break 'run,
                            permit = permits.clone().acquire_owned() => permit,
                        };
                        let Ok(permit) = permit else { break };
                        let (delivery, callback, chunk) = (delivery.clone(), callback.clone(), chunk.to_vec());
                        in_flight.spawn(async move {
                            deliver(&delivery, &callback, &chunk).await;
                            drop(permit);
                        });
                    }
                }
                while in_flight.try_join_next().is_some() {}
            }
        }
    }
    let left = heap.len() + in_flight.len();
    if left > 0 {
        tracing::info!(left, "Simulator stopped; pending receipts dropped.");
    }
    in_flight.shutdown().await;
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Removes every receipt due by `now`, grouped by callback URL in due order, stamped `stamp`.
fn take_due(heap: &mut BinaryHeap<Pending>, now: Instant, stamp: &str) -> Vec<(Arc<str>, Vec<Receipt>)> {
    let mut groups: Vec<(Arc<str>, Vec<Receipt>)> = Vec::new();
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    while heap.peek().is_some_and(|p| p.item.due <= now) {
        let Some(Pending { mut item, .. }) = heap.pop() else { break };
        item.receipt.timestamp = stamp.to_string();
        let slot = *index.entry(item.callback.clone()).or_insert_with(|| {
            groups.push((item.callback.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(item.receipt);
    }
    groups
}

/// POSTs `receipts` to `callback`, retrying with doubling delays; counts them sent or dropped.
async fn deliver(delivery: &Delivery, callback: &str, receipts: &[Receipt]) {
    let body = if delivery.batch > 1 { serde_json::to_vec(receipts) } else { serde_json::to_vec(&receipts[0]) };
    let Ok(body) = body else { return };
    let n = receipts.len() as u64;
    let mut last_error = String::new();
    for attempt in 0..delivery.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(delivery.backoff.saturating_mul(1 << (attempt - 1).min(16))).await;
        }
        let sent = delivery
            .client
            .post(callback)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Counters::bump(&delivery.counters.receipts_sent, n);
                return;
            }
            Ok(response) => last_error = format!("HTTP {}", response.status()),
            Err(e) => last_error = e.to_string(),
        }
    }
    Counters::bump(&delivery.counters.receipts_dropped, n);
    tracing::warn!(callback, receipts = n, error = %last_error, "Callback kept failing; receipts dropped.");
}
