#!/usr/bin/env bash
# Before/after: two crm release binaries, A (e.g. the last commit before a change) and B, timed
# alternately in one run on the same generated data, so the shared machine's drift hits both:
#   1. import of ROWS generated leads into a fresh store (RUNS each, median),
#   2. `segments preview` of the spend/visits/date rule on that store, process included
#      (PREVIEWS each, median),
#   3. a CAMPAIGN_ROWS-lead campaign from `campaigns run` to COMPLETED through
#      `crm worker all` + `crm sim`, rate limit off (CAMPAIGNS each, median).
#
#   benches/compare.sh A_BIN B_BIN [ROWS] [CAMPAIGN_ROWS]
#   (defaults 1000000 and 100000; RUNS=3 PREVIEWS=11 CAMPAIGNS=2; BENCH_DIR=/tmp/crm-bench)
#
# Build A from another commit with e.g.
#   git worktree add /tmp/crm-a COMMIT && (cd /tmp/crm-a && cargo build --release --bin crm)
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"
ROWS="${3:-1000000}"
CAMPAIGN_ROWS="${4:-100000}"
RUNS="${RUNS:-3}"; PREVIEWS="${PREVIEWS:-11}"; CAMPAIGNS="${CAMPAIGNS:-2}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
cargo build --release --quiet --example gen_leads
GEN="$CARGO_TARGET_DIR/release/examples/gen_leads"
CSV="$WORK/leads-$ROWS.csv"; [ -f "$CSV" ] || "$GEN" "$ROWS" "$CSV"
CCSV="$WORK/leads-$CAMPAIGN_ROWS.csv"; [ -f "$CCSV" ] || "$GEN" "$CAMPAIGN_ROWS" "$CCSV"
RULE='total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10)'
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

import_ms() { # $1 bin, $2 store, $3 csv
  rm -f "$2" "$2-wal" "$2-shm"
  local t0; t0=$(ms)
  "$1" --store "$2" leads import "$3" --default-region GB -q >/dev/null || [ $? -eq 1 ]
  echo $(( $(ms) - t0 ))
}

preview_ms() { # $1 bin, $2 store
  local t0; t0=$(ms)
  "$1" --store "$2" --json segments preview --rule "$RULE" --sample 10 >/dev/null
  echo $(( $(ms) - t0 ))
}

campaign_ms() { # $1 bin, $2 store
  local crm="$1" store="$2" port=$(( 20000 + RANDOM % 20000 ))
  import_ms "$crm" "$store" "$CCSV" >/dev/null
  "$crm" --store "$store" segments create everyone --rule 'visits >= 0' -q >/dev/null
  "$crm" --store "$store" campaigns create bench --segment everyone --template 'Hi {{first_name|there}}!' -q >/dev/null
  "$crm" sim --listen "127.0.0.1:$port" --delivered-after-ms 500 --read-after-ms 1000 --receipt-batch 200 -q \
    >/dev/null 2>&1 &
  local sim=$!
  "$crm" --store "$store" worker all --sim-url "http://127.0.0.1:$port" --rate-per-minute 0 --concurrency 64 \
    --webhook-listen 127.0.0.1:0 -q >/dev/null 2>"$WORK/worker.log" &
  local worker=$!
  PIDS+=("$sim" "$worker")
  sleep 0.5
  local t0; t0=$(ms)
  "$crm" --store "$store" campaigns run bench -q >/dev/null
  # Polled with `campaigns list` (the store only): `campaigns status` also asks the bus for its
  # queue depths, which on Kafka costs a client and ~0.5 s per call.
  until "$crm" --store "$store" --json campaigns list | grep -q '"status": "COMPLETED"'; do sleep 0.1; done
  local took=$(( $(ms) - t0 ))
  kill "$worker" "$sim" 2>/dev/null; wait "$worker" "$sim" 2>/dev/null || true
  echo "$took"
}

declare -A T
for _ in $(seq "$RUNS"); do
  for side in A B; do bin=${!side}; T[import_$side]+="$(import_ms "$bin" "$WORK/cmp-$side.db" "$CSV") "; done
done
for _ in $(seq "$PREVIEWS"); do
  for side in A B; do bin=${!side}; T[preview_$side]+="$(preview_ms "$bin" "$WORK/cmp-$side.db") "; done
done
for _ in $(seq "$CAMPAIGNS"); do
  for side in A B; do bin=${!side}; T[campaign_$side]+="$(campaign_ms "$bin" "$WORK/cmp-campaign-$side.db") "; done
done

report() { # $1 name
  local a b; a=$(tr ' ' '\n' <<<"${T[${1}_A]}" | grep . | median); b=$(tr ' ' '\n' <<<"${T[${1}_B]}" | grep . | median)
  printf '%-9s A %8s ms   B %8s ms   B/A %s   (A: %s| B: %s)\n' "$1" "$a" "$b" \
    "$(echo "scale=3; $b / $a" | bc)" "${T[${1}_A]}" "${T[${1}_B]}"
}
echo "A = $A"; echo "B = $B"; echo "import: $ROWS rows; campaign: $CAMPAIGN_ROWS rows"
report import; report preview; report campaign
