#!/usr/bin/env bash
# Where a campaign's work goes: a ROWS-lead campaign (default 100,000) from `crm campaigns run`
# to COMPLETED with the three worker roles in three processes (`worker expand`, `worker send`,
# `worker status --webhook-listen`) and `crm sim` (rate limit off), then each process's CPU
# seconds and bytes written (/proc/PID/stat and /proc/PID/io at completion). SQLite store; the
# bus is BUS (`kafka`, the default: a tansu started here as in benches/kafka.sh, or BENCH_KAFKA;
# or `embedded`). RECEIPTS=off pushes the simulator's receipts 10 minutes out, so none arrives
# during the run: the difference is what the delivery receipts cost.
#
#   benches/pipeline_split.sh [ROWS]      (BENCH_DIR defaults to /tmp/crm-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-100000}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
cargo build --release --quiet --bin crm --example gen_leads
CRM="$CARGO_TARGET_DIR/release/crm"
GEN="$CARGO_TARGET_DIR/release/examples/gen_leads"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT

BUS="${BUS:-kafka}"
if [ "$BUS" = kafka ]; then
  BROKER="${BENCH_KAFKA:-}"
  if [ -z "$BROKER" ]; then
    port=$(free_port)
    "${CRM_TANSU:-$HOME/.cargo/bin/tansu}" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
    PIDS+=($!)
    BROKER="127.0.0.1:$port"
    sleep 1
  fi
  tag="$$-$(date +%s)"
  export CRM_BUS="kafka://$BROKER?partitions=6&session_timeout_ms=6000&topic_prefix=split-$tag.&group_prefix=split-$tag."
else
  export CRM_BUS=embedded
fi
if [ "${RECEIPTS:-on}" = off ]; then
  receipts=(--delivered-after-ms 600000 --read-after-ms 1200000)
else
  receipts=(--delivered-after-ms 500 --read-after-ms 1000)
fi

CSV="$WORK/leads-$ROWS.csv"
[ -f "$CSV" ] || "$GEN" "$ROWS" "$CSV"
STORE="$WORK/split.db"
rm -f "$STORE"*
"$CRM" --store "$STORE" leads import "$CSV" --default-region GB -q >/dev/null || true
"$CRM" --store "$STORE" segments create everyone --rule 'visits >= 0' -q >/dev/null
"$CRM" --store "$STORE" campaigns create bench --segment everyone --template 'Hi {{first_name|there}}!' -q >/dev/null

sim_port=$(free_port); hook_port=$(free_port)
"$CRM" sim --listen "127.0.0.1:$sim_port" "${receipts[@]}" --receipt-batch 200 -q >/dev/null 2>&1 &
SIM=$!; PIDS+=($SIM)
"$CRM" --store "$STORE" worker status --webhook-listen "127.0.0.1:$hook_port" -q >/dev/null 2>"$WORK/split-status.log" &
STATUS=$!; PIDS+=($STATUS)
"$CRM" --store "$STORE" worker send --sim-url "http://127.0.0.1:$sim_port" --rate-per-minute 0 --concurrency 64 \
  --callback-url "http://127.0.0.1:$hook_port/receipts" -q >/dev/null 2>"$WORK/split-send.log" &
SEND=$!; PIDS+=($SEND)
"$CRM" --store "$STORE" worker expand -q >/dev/null 2>"$WORK/split-expand.log" &
EXPAND=$!; PIDS+=($EXPAND)
sleep 8 # Kafka: the consumer groups join (tansu holds a JoinGroup for about half the session timeout)
start=$(date +%s%N)
"$CRM" --store "$STORE" campaigns run bench -q >/dev/null
"$CRM" --store "$STORE" campaigns wait bench --timeout 10m -q >/dev/null
echo "bus $BUS, receipts ${RECEIPTS:-on}: $ROWS-row campaign run -> COMPLETED in $(( ($(date +%s%N) - start) / 1000000 )) ms"
tick=$(getconf CLK_TCK)
for role in EXPAND SEND STATUS SIM; do
  pid=${!role}
  awk -v role="$role" -v tick="$tick" -v io="$(awk '/^wchar/ {print $2}' "/proc/$pid/io")" \
    '{ printf "  %-6s %6.2f CPU-s  %7.1f MB written\n", tolower(role), ($14 + $15) / tick, io / 1e6 }' "/proc/$pid/stat"
done
kill -INT "$EXPAND" "$SEND" "$STATUS" 2>/dev/null || true
sleep 2
