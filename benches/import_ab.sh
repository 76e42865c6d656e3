#!/usr/bin/env bash
# Two builds on the same import, alternating: each run imports the generated ROWS-lead CSV
# (default 1,000,000, made by benches/import.sh or gen_leads) into a new store, printing wall,
# user and system seconds per run. Use it to judge one change to the import against the binary
# before it on a shared machine, where absolute times drift.
#
#   benches/import_ab.sh A_BIN B_BIN [ROWS] [PAIRS]     (BENCH_DIR defaults to /tmp/crm-bench)
set -euo pipefail
A="$1"; B="$2"; ROWS="${3:-1000000}"; PAIRS="${4:-3}"
WORK="${BENCH_DIR:-/tmp/crm-bench}"
CSV="$WORK/leads-$ROWS.csv"
[ -f "$CSV" ] || { echo "no $CSV: run benches/import.sh $ROWS first" >&2; exit 2; }
for i in $(seq "$PAIRS"); do
  line="pair $i:"
  for bin in "$A" "$B"; do
    rm -f "$WORK"/ab-import.db*
    t=$( { /usr/bin/time -f "%e s (user %U, sys %S)" "$bin" --store "$WORK/ab-import.db" leads import "$CSV" --default-region GB -q >/dev/null; } 2>&1 | tail -1)
    line="$line $( [ "$bin" = "$A" ] && echo A || echo "| B") $t"
  done
  echo "$line"
done
rm -f "$WORK"/ab-import.db*
