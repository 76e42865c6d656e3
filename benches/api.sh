#!/usr/bin/env bash
# HTTP API benchmark: `crm serve` (release) on a 1,000,000-lead store, driven by wrk on the same
# machine with a valid token, 30 s per load:
#   1. GET /api/v1/leads?limit=20&page=N   random pages over the whole store
#   2. …&search=COMMON                      a common name (thousands of matches), random pages
#   3. …&search=NOMATCH                     a string no lead has
# Prints requests/s and the latency percentiles wrk reports (--latency) for each.
#
#   benches/api.sh [STORE]     (STORE: an existing 1,000,000-lead store to reuse; default: one
#                               generated and imported under $BENCH_DIR, kept for next time)
#   DURATION=30s THREADS=2 CONNECTIONS=32 COMMON=smith NOMATCH=zzzqqxx benches/api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=1000000
WORK="${BENCH_DIR:-/tmp/crm-bench}"
DURATION="${DURATION:-30s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
COMMON="${COMMON:-smith}"
NOMATCH="${NOMATCH:-zzzqqxx}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
mkdir -p "$WORK"

# CRM_BIN=path: time that binary (e.g. one built from another commit) instead of building.
if [ -n "${CRM_BIN:-}" ]; then
  CRM="$CRM_BIN"
else
  cargo build --release --quiet --bin crm --example gen_leads
  CRM="$CARGO_TARGET_DIR/release/crm"
fi
STORE="${1:-$WORK/api-$ROWS.db}"
if [ ! -f "$STORE" ]; then
  CSV="$WORK/leads-$ROWS.csv"
  [ -f "$CSV" ] || "$CARGO_TARGET_DIR/release/examples/gen_leads" "$ROWS" "$CSV"
  "$CRM" --store "$STORE" leads import "$CSV" --default-region GB -q >/dev/null || [ $? -eq 1 ]
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
export CRM_JWT_SECRET="bench-$(date +%s%N)-secret"
OUT="$WORK/serve.out"
"$CRM" --store "$STORE" --json -q serve --listen 127.0.0.1:0 >"$OUT" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do grep -q listen "$OUT" 2>/dev/null && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$OUT")
TOKEN=$("$CRM" auth token --user bench --ttl 1h)
AUTH="Authorization: Bearer $TOKEN"

# Pages each load can reach, from the API's own count.
total() {
  curl -sf -H "$AUTH" "http://$ADDR/api/v1/leads?limit=1$1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["pagination"]["total"])'
}
ALL=$(total "")
MATCHES=$(total "&search=$COMMON")
NONE=$(total "&search=$NOMATCH")
echo "store: $STORE ($ALL leads); '$COMMON' matches $MATCHES, '$NOMATCH' $NONE"
# The first request of a listing computes it (later pages are cut from it until a lead
# changes): time that one on its own, on a fresh server, before the loads.
cold() {
  curl -s -o /dev/null -w '%{time_total}' -H "$AUTH" "http://$ADDR/api/v1/leads?limit=20$1" \
    | python3 -c 'import sys; print(f"{float(sys.stdin.read()) * 1000:.0f} ms")'
}
echo "first requests on a fresh server:"
echo "  page $(((ALL / 20) / 2)) of all leads: $(cold "&page=$(((ALL / 20) / 2))&sort_by=name")  (sorted by name: builds that listing)"
echo "  search=${COMMON}x (new term): $(cold "&search=${COMMON}x")"
echo "  search=${NOMATCH}y (new term, no match): $(cold "&search=${NOMATCH}y")"
echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# A wrk script asking for random pages of `query` among `pages`.
pages_script() {
  local query="$1" pages="$2" file="$WORK/$3.lua"
  cat >"$file" <<LUA
math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
request = function()
  return wrk.format("GET", "/api/v1/leads?limit=20$query&page=" .. math.random(1, $pages))
end
LUA
  echo "$file"
}

run() {
  local name="$1" script="$2"
  echo
  echo "== $name"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$AUTH" -s "$script" "http://$ADDR" \
    | grep -E 'Requests/sec|Latency  |^ +(50|90|99)%|Non-2xx|Socket errors'
}

run "random pages" "$(pages_script "" $(((ALL + 19) / 20)) pages)"
run "search=$COMMON, random pages" "$(pages_script "&search=$COMMON" $(((MATCHES + 19) / 20)) common)"
run "search=$NOMATCH (no match)" "$(pages_script "&search=$NOMATCH" 1 nomatch)"
