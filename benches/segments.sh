#!/usr/bin/env bash
# Segment benchmark: times `crm segments preview` end to end (process start-up included) on a
# 1,000,000-lead store built from the gen_leads CSV, and what the segment index costs the import.
#
#   benches/segments.sh [ROWS]       (default 1000000; RUNS=11 previews and RUNS_IMPORT=3 imports
#                                     each, medians reported; CRITERION=1 also runs
#                                     `cargo bench --bench segments` on the same store)
#
# Budgets from the issue: the spend/visits/date rule under 150 ms end to end (50 ms inside the
# engine, see benches/segments.rs); tags and metadata rules under 300 ms.
#
# Import cost: the same binary imports the same file into a fresh store as shipped (migration 2
# creates the `leads_numbers` index) and into one whose index was dropped first, alternately.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
RUNS="${RUNS:-11}"
RUNS_IMPORT="${RUNS_IMPORT:-3}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
CSV="$WORK/leads-$ROWS.csv"
STORE="$WORK/segments.db"

cargo build --release --quiet --bin crm --example gen_leads
CRM="$CARGO_TARGET_DIR/release/crm"
[ -f "$CSV" ] || "$CARGO_TARGET_DIR/release/examples/gen_leads" "$ROWS" "$CSV"
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "file: $CSV ($ROWS rows)"

# One import: into a fresh store at $1, with the segment index dropped first when $2 = drop.
import_secs() {
  rm -f "$1" "$1-wal" "$1-shm"
  # An import of a header-only file creates the store (read-only commands never create one).
  printf 'email\n' >"$WORK/header.csv"
  "$CRM" --store "$1" leads import "$WORK/header.csv" -q >/dev/null
  [ "$2" = drop ] && sqlite3 "$1" 'DROP INDEX leads_numbers'
  /usr/bin/time -o "$WORK/time.txt" -f "%e %M" "$CRM" --store "$1" leads import "$CSV" --default-region GB -q >/dev/null
  cat "$WORK/time.txt"
}

with=(); without=(); mem=()
for _ in $(seq "$RUNS_IMPORT"); do
  out=$(import_secs "$WORK/no-index.db" drop); without+=("${out% *}")
  out=$(import_secs "$STORE" keep); with+=("${out% *}"); mem+=("${out#* }")
done
rm -f "$WORK/no-index.db" "$WORK/no-index.db-wal" "$WORK/no-index.db-shm"
WITH=$(printf '%s\n' "${with[@]}" | median)
WITHOUT=$(printf '%s\n' "${without[@]}" | median)
printf '\nimport of %s rows (%s runs each, alternating, median seconds):\n' "$ROWS" "$RUNS_IMPORT"
printf '  %-44s %6.2f\n' "without the segment index (dropped first)" "$WITHOUT"
printf '  %-44s %6.2f  (%+.2f s; peak %d MB)\n' "with the segment index (as shipped)" "$WITH" \
  "$(echo "$WITH - $WITHOUT" | bc -l)" "$(( $(printf '%s\n' "${mem[@]}" | sort -n | tail -1) / 1024 ))"

preview_ms() {
  local ts=()
  "$CRM" --store "$STORE" segments preview --rule "$1" >/dev/null # warm the OS page cache
  for _ in $(seq "$RUNS"); do
    t0=$(ms); "$CRM" --store "$STORE" segments preview --rule "$1" >/dev/null; t1=$(ms)
    ts+=("$((t1 - t0))")
  done
  printf '%s\n' "${ts[@]}" | median
}

printf '\nsegments preview --rule R (count + first 10 leads; ms, median of %s, process included):\n' "$RUNS"
printf '  %-76s %6s %8s\n' "rule" "ms" "budget"
while IFS='|' read -r budget rule; do
  printf '  %-76s %6.0f %8s\n' "$rule" "$(preview_ms "$rule")" "$budget"
done <<'RULES'
150|total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10)
300|tags contains "vip"
300|metadata.city in ["Lagos", "Berlin"]
-|name contains "ada" or emails contains "@proton.me"
RULES
printf '  (matches: %s)\n' "$("$CRM" --store "$STORE" --json segments preview --sample 0 \
  --rule 'total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10)' | tr -d ' \n')"

if [ "${CRITERION:-0}" = 1 ]; then
  CRM_BENCH_STORE="$STORE" cargo bench --bench segments
fi
