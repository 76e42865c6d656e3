#!/usr/bin/env bash
# Kafka bus benchmark, real processes end to end: a ROWS-lead campaign (default 100,000) from
# `crm campaigns run` to COMPLETED through `crm worker all` and `crm sim` (rate limit off,
# simulator latency 0) on
#   1. the embedded bus (SQLite store),
#   2. Kafka + SQLite store,
#   3. Kafka + MongoDB store (with BENCH_MONGO=1: CRM_TEST_MONGODB_URI, or a SecantusDB started
#      here — a Python server, far slower than mongod, so its figure says little),
# beside raw rdkafka producing and consuming the same number of messages (examples/kafka_raw.rs),
# with the ratios. The broker is BENCH_KAFKA (HOST:PORT), or a tansu started here (CRM_TANSU or
# ~/.cargo/bin/tansu, in memory).
#
# The campaign starts WARM seconds (default 1) after the worker: with the default, the consumer
# groups' first join on tansu overlaps the run, as the raw client's join is inside its consume
# time; with WARM=6 the groups have joined, and the ratio to compare is the one against the raw
# client's time without its join (printed too).
#
#   [ROUNDS=N] [WARM=S] benches/kafka.sh [ROWS]      (BENCH_DIR defaults to /tmp/crm-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-100000}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
cargo build --release --quiet --bin crm --example gen_leads --example kafka_raw
CRM="$CARGO_TARGET_DIR/release/crm"
GEN="$CARGO_TARGET_DIR/release/examples/gen_leads"
RAW="$CARGO_TARGET_DIR/release/examples/kafka_raw"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; PIDS=(); }
trap 'cleanup; for p in ${SERVERS:-}; do kill "$p" 2>/dev/null || true; done' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SERVERS=""

BROKER="${BENCH_KAFKA:-}"
if [ -z "$BROKER" ]; then
  TANSU="${CRM_TANSU:-$HOME/.cargo/bin/tansu}"
  PORT=$(free_port)
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
  SERVERS="$SERVERS $!"
  BROKER="127.0.0.1:$PORT"
  sleep 1
fi
MONGO="${CRM_TEST_MONGODB_URI:-}"
SECANTUSD="${CRM_SECANTUSD:-/var/tmp/crm-venv-mongo/bin/secantusd-py}"
if [ "${BENCH_MONGO:-0}" != 1 ]; then
  MONGO=""
elif [ -z "$MONGO" ] && [ -x "$SECANTUSD" ]; then
  MPORT=$(free_port)
  "$SECANTUSD" --host 127.0.0.1 --port "$MPORT" --storage-path :memory: --log-level WARNING >"$WORK/secantusd.log" 2>&1 &
  SERVERS="$SERVERS $!"
  MONGO="mongodb://127.0.0.1:$MPORT/?directConnection=true"
  sleep 3
fi

CSV="$WORK/leads-$ROWS.csv"
[ -f "$CSV" ] || "$GEN" "$ROWS" "$CSV"

# run_campaign NAME STORE BUS: prints the milliseconds from `run` to COMPLETED.
run_campaign() {
  local name=$1 store=$2 bus=$3
  export CRM_BUS="$bus"
  "$CRM" --store "$store" leads import "$CSV" --default-region GB -q >/dev/null || true
  "$CRM" --store "$store" segments create everyone --rule 'visits >= 0' -q >/dev/null
  "$CRM" --store "$store" campaigns create bench --segment everyone --template 'Hi {{first_name|there}}!' -q >/dev/null
  local port; port=$(free_port)
  "$CRM" sim --listen "127.0.0.1:$port" --delivered-after-ms 500 --read-after-ms 1000 --receipt-batch 200 -q >/dev/null 2>&1 &
  PIDS+=($!)
  "$CRM" --store "$store" worker all --sim-url "http://127.0.0.1:$port" --rate-per-minute 0 --concurrency 64 \
    --webhook-listen 127.0.0.1:0 -q >/dev/null 2>"$WORK/worker-$name.log" &
  PIDS+=($!)
  sleep "${WARM:-1}"
  local start; start=$(ms)
  "$CRM" --store "$store" campaigns run bench -q >/dev/null
  # `campaigns wait` reads the campaign's status 10 times a second in one process (polling
  # `campaigns status` would also ask the bus for its queue depths: a client, ~0.5 s, on Kafka).
  "$CRM" --store "$store" campaigns wait bench --timeout 30m -q >/dev/null
  echo $(( $(ms) - start ))
  cleanup
  unset CRM_BUS
}

tag="$$-$(date +%s)"
kafka_url() { echo "kafka://$BROKER?partitions=6&session_timeout_ms=6000&topic_prefix=bench-$1-$tag.&group_prefix=bench-$1-$tag."; }
# ROUNDS (default 1) repeats the embedded campaign, the Kafka campaign and the raw client in
# turn, so that each ratio compares runs minutes apart, not an hour apart; the medians follow.
RESULTS=()
for round in $(seq 1 "${ROUNDS:-1}"); do
  [ "${ROUNDS:-1}" -gt 1 ] && echo "round $round:"
  rm -f "$WORK/kafka-embedded.db"*; rm -f "$WORK/kafka-sqlite.db"*
  embedded=$(run_campaign embedded "$WORK/kafka-embedded.db" embedded)
  echo "embedded bus + SQLite: ${embedded} ms"
  kafka_sqlite=$(run_campaign kafka-sqlite "$WORK/kafka-sqlite.db" "$(kafka_url "sqlite$round")")
  echo "Kafka + SQLite: ${kafka_sqlite} ms"
  kafka_mongo=""
  if [ -n "$MONGO" ]; then
    base="${MONGO%%\?*}"; query="${MONGO#*\?}"; [ "$query" = "$MONGO" ] && query=""
    mongo_store="${base%/}/crm_bench_$tag$round${query:+?$query}"
    kafka_mongo=$(run_campaign kafka-mongo "$mongo_store" "$(kafka_url "mongo$round")")
    echo "Kafka + MongoDB: ${kafka_mongo} ms"
  fi
  # The pipeline moves two messages per lead (a send job, a status update) plus one chunk per
  # thousand leads: raw rdkafka moves ROWS and 2×ROWS for the comparison.
  raw1=$("$RAW" "$BROKER" "$ROWS"); echo "$raw1"
  raw2=$("$RAW" "$BROKER" $(( ROWS * 2 ))); echo "$raw2"
  RESULTS+=("$embedded|$kafka_sqlite|$kafka_mongo|$raw1|$raw2")
done
python3 - "${RESULTS[@]}" <<'PY'
import re, statistics, sys
def raw_ms(line):
    secs = re.findall(r"(?:produce|consume\+commit) ([0-9.]+) s", line)
    return sum(float(s) for s in secs) * 1000
rows = []
for arg in sys.argv[1:]:
    e, k, m, raw1, raw2 = arg.split("|")
    e, k, m = int(e), int(k), (int(m) if m else None)
    r1, r2 = raw_ms(raw1), raw_ms(raw2)
    join = re.findall(r"first message after ([0-9.]+) s", raw2)
    r2_joined = r2 - float(join[0]) * 1000 if join else None
    rows.append((e, k, m, r1, r2, r2_joined))
    print(f"ratios: Kafka+SQLite / embedded = {k / e:.2f}" + (f"; Kafka+MongoDB / embedded = {m / e:.2f}" if m else ""))
    print(f"Kafka+SQLite / raw produce+consume of the messages the pipeline moves (2x rows, {r2:.0f} ms) = {k / r2:.2f}"
          f"; of rows messages ({r1:.0f} ms) = {k / r1:.2f}")
    if r2_joined:
        print(f"... the raw client's time without its group join ({r2_joined:.0f} ms) = {k / r2_joined:.2f}"
              " (fair when the worker's groups joined before the run too: WARM=6)")
if len(rows) > 1:
    med = lambda xs: statistics.median(xs)
    headline = [k / r2 for _, k, _, _, r2, _ in rows]
    print(f"over {len(rows)} rounds: Kafka+SQLite / raw (2x rows) median {med(headline):.2f}"
          f" (min {min(headline):.2f}, max {max(headline):.2f}); Kafka+SQLite / embedded median"
          f" {med([k / e for e, k, *_ in rows]):.2f}")
    strict = [k / j for _, k, _, _, _, j in rows if j]
    if strict:
        print(f"... against the raw client without its join: median {med(strict):.2f}"
              f" (min {min(strict):.2f}, max {max(strict):.2f})")
PY
