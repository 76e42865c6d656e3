#!/usr/bin/env bash
# Two builds on the same campaign, alternating: a ROWS-lead store (default 100,000) is prepared
# once per build, and each run starts from a copy of it — `crm worker all` + `crm sim` (receipts
# after 500 / 1000 ms), `campaigns run`, `campaigns wait` until COMPLETED — printing each run's
# milliseconds and the CPU milliseconds of the worker and the simulator. With CRM_BUS set
# (e.g. a kafka:// URL with a fresh topic_prefix per run added here) the runs use that bus.
#
#   benches/campaign_ab.sh A_BIN B_BIN [ROWS] [RUNS]     (BENCH_DIR defaults to /tmp/crm-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"; ROWS="${3:-100000}"; RUNS="${4:-3}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
cargo build --release --quiet --example gen_leads
CSV="$WORK/leads-$ROWS.csv"
[ -f "$CSV" ] || "$CARGO_TARGET_DIR/release/examples/gen_leads" "$ROWS" "$CSV"
# A store per build, prepared by that build: a build with a newer schema (or another way of
# creating campaigns) must not run on a store the other one made.
base_of() { # base_of BIN -> the path of BIN's prepared store
  local bin=$1 base
  base="$WORK/ab-base-$ROWS-$(stat -c %Y-%s "$bin" | md5sum | cut -c1-8).db"
  if [ ! -f "$base" ]; then
    "$bin" --store "$base" leads import "$CSV" --default-region GB -q >/dev/null || true
    "$bin" --store "$base" segments create everyone --rule 'visits >= 0' -q >/dev/null
    "$bin" --store "$base" campaigns create bench --segment everyone --template 'Hi {{first_name|there}}!' -q >/dev/null
  fi
  echo "$base"
}
BASE_A=$(base_of "$A"); BASE_B=$(base_of "$B")
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14+$15)*1000/hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BUS0="${CRM_BUS:-}"
one() { # one BIN BASE -> "MS ms (cpu: worker W ms, sim S ms)"
  local crm=$1 store="$WORK/ab-run.db" port sim wk
  rm -f "$store" "$store-wal" "$store-shm"; cp "$2" "$store"
  [ -n "$BUS0" ] && export CRM_BUS="$BUS0&topic_prefix=ab$RANDOM$RANDOM.&group_prefix=ab$RANDOM$RANDOM."
  port=$(free_port)
  "$crm" sim --listen "127.0.0.1:$port" --delivered-after-ms 500 --read-after-ms 1000 --receipt-batch 200 -q >/dev/null 2>&1 & sim=$!
  "$crm" --store "$store" worker all --sim-url "http://127.0.0.1:$port" --rate-per-minute 0 --concurrency 64 \
    --webhook-listen 127.0.0.1:0 -q >/dev/null 2>"$WORK/ab-worker.log" & wk=$!
  sleep "${WARM:-1}" # on Kafka, WARM=6 lets the consumer groups join first
  local c0w c0s s; c0w=$(cpu $wk); c0s=$(cpu $sim); s=$(date +%s%N)
  "$crm" --store "$store" campaigns run bench -q >/dev/null
  "$crm" --store "$store" campaigns wait bench --timeout 30m -q >/dev/null
  echo "$(( ($(date +%s%N) - s) / 1000000 )) ms (cpu: worker $(( $(cpu $wk) - c0w )) ms, sim $(( $(cpu $sim) - c0s )) ms)"
  kill -INT $wk; wait $wk 2>/dev/null || true; kill $sim; wait $sim 2>/dev/null || true
}
for i in $(seq "$RUNS"); do
  echo "run $i: A $(one "$A" "$BASE_A") | B $(one "$B" "$BASE_B")"
done
