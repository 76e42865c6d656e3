#!/usr/bin/env bash
# Import benchmark: times the release binary on a generated 1,000,000-lead CSV (~100 MB, every
# row with a phone) next to two baselines, and prints the figures.
#
#   benches/import.sh [ROWS]        (default 1000000; RUNS=3 repeats, median reported)
#
# Then, once: ROWS other leads into a store holding ROWS leads (the halves of a 2 x ROWS file).
#
# Baselines, run on the same file in the same session:
#   - raw floor: sqlite3 '.import' (no validation, no dedup)
#   - the script a user would write: pandas read_csv + to_sql into SQLite + an email index
#     (validates nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
RUNS="${RUNS:-3}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"
CSV="$WORK/leads-$ROWS.csv"

cargo build --release --quiet --bin crm --example gen_leads
CRM="$CARGO_TARGET_DIR/release/crm"
[ -f "$CSV" ] || "$CARGO_TARGET_DIR/release/examples/gen_leads" "$ROWS" "$CSV"
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
# pandas in its own venv (Debian's python refuses a system-wide pip install).
PY="${PANDAS_PYTHON:-/var/tmp/crm-venv-pandas/bin/python}"
if ! "$PY" -c 'import pandas' 2>/dev/null; then
  python3 -m venv /var/tmp/crm-venv-pandas && /var/tmp/crm-venv-pandas/bin/pip install -q pandas
  PY=/var/tmp/crm-venv-pandas/bin/python
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }

echo "file: $CSV ($(du -m "$CSV" | cut -f1) MB, $ROWS rows)"

# One round = crm import, re-import of the same file, sqlite3 floor, pandas, alternating, so a
# shared machine's drift hits all of them alike.
crm_times=(); crm_mem=(); re_times=(); floor_times=(); pandas_times=()
for _ in $(seq "$RUNS"); do
  rm -f "$WORK"/crm.db*
  out=$( { /usr/bin/time -f "%e %M" "$CRM" --store "$WORK/crm.db" leads import "$CSV" --default-region GB -q >/dev/null; } 2>&1 | tail -1)
  crm_times+=("$(echo "$out" | cut -d' ' -f1)"); crm_mem+=("$(echo "$out" | cut -d' ' -f2)")
  out=$( { /usr/bin/time -f "%e %M" "$CRM" --store "$WORK/crm.db" leads import "$CSV" --default-region GB -q >/dev/null; } 2>&1 | tail -1)
  re_times+=("$(echo "$out" | cut -d' ' -f1)")
  rm -f "$WORK"/floor.db*
  t0=$(now); sqlite3 "$WORK/floor.db" -cmd '.mode csv' ".import $CSV leads" </dev/null; t1=$(now)
  floor_times+=("$(echo "$t1 - $t0" | bc)")
  rm -f "$WORK"/pandas.db*
  t0=$(now)
  "$PY" - "$CSV" "$WORK/pandas.db" <<'PY'
import sqlite3, sys
import pandas as pd
df = pd.read_csv(sys.argv[1])
con = sqlite3.connect(sys.argv[2])
df.to_sql("leads", con, index=False)
con.execute('CREATE INDEX leads_email ON leads("Email Address")')
con.commit()
PY
  t1=$(now); pandas_times+=("$(echo "$t1 - $t0" | bc)")
done
CRM_T=$(printf '%s\n' "${crm_times[@]}" | median)
CRM_M=$(printf '%s\n' "${crm_mem[@]}" | sort -n | tail -1)
RE_T=$(printf '%s\n' "${re_times[@]}" | median)
FLOOR_T=$(printf '%s\n' "${floor_times[@]}" | median)
PANDAS_T=$(printf '%s\n' "${pandas_times[@]}" | median)

# Search on the imported store: median of 5 runs of each, end to end (process included).
search_ms() {
  local ts=()
  for _ in 1 2 3 4 5; do
    t0=$(now); "$CRM" --store "$WORK/crm.db" leads list --search "$1" --limit 20 >/dev/null 2>&1; t1=$(now)
    ts+=("$(echo "($t1 - $t0) * 1000" | bc)")
  done
  printf '%s\n' "${ts[@]}" | median
}

printf '\n%-58s %8s\n' "what ($RUNS runs, median)" "seconds"
printf '%-58s %8.2f\n' "crm leads import (validate, normalize, dedup, index)" "$CRM_T"
printf '%-58s %8.2f\n' "crm leads import of the same file again (nothing changes)" "$RE_T"
printf '%-58s %8.2f\n' "sqlite3 .import (raw floor, no validation)" "$FLOOR_T"
printf '%-58s %8.2f\n' "pandas read_csv + to_sql + email index" "$PANDAS_T"
printf '\ncrm / floor  = %.2fx\ncrm / pandas = %.2fx\nre-import / import = %.2fx\n' "$(echo "$CRM_T / $FLOOR_T" | bc -l)" "$(echo "$CRM_T / $PANDAS_T" | bc -l)" "$(echo "$RE_T / $CRM_T" | bc -l)"
printf 'crm peak memory (max RSS over runs): %d MB\n' "$((CRM_M / 1024))"
# Into a store that already holds ROWS leads: ROWS other leads, once. Both halves come from one
# generated file of 2 x ROWS rows (a second seed would repeat the same phone numbers).
BOTH="$WORK/leads-$((2 * ROWS)).csv"
[ -f "$BOTH" ] || "$CARGO_TARGET_DIR/release/examples/gen_leads" "$((2 * ROWS))" "$BOTH"
head -n "$((ROWS + 1))" "$BOTH" > "$WORK/first-half.csv"
{ head -n 1 "$BOTH"; tail -n "+$((ROWS + 2))" "$BOTH"; } > "$WORK/second-half.csv"
rm -f "$WORK"/full.db*
"$CRM" --store "$WORK/full.db" leads import "$WORK/first-half.csv" --default-region GB -q >/dev/null || true
out=$( { /usr/bin/time -f "%e %M" "$CRM" --store "$WORK/full.db" leads import "$WORK/second-half.csv" --default-region GB -q >/dev/null || true; } 2>&1 | tail -1)
printf '\ninto a store already holding %s leads, %s other rows: %.2f s, %d MB peak\n' \
  "$ROWS" "$ROWS" "$(echo "$out" | cut -d' ' -f1)" "$(( $(echo "$out" | cut -d' ' -f2) / 1024 ))"
rm -f "$WORK"/full.db* "$WORK/first-half.csv" "$WORK/second-half.csv"

printf '\nleads list --search X --limit 20 (ms, median of 5, process included):\n'
for term in "zzzz-no-match" "hopper" "7911" "ada.lovelace12"; do
  printf '  %-16s %6.0f\n' "$term" "$(search_ms "$term")"
done
