#!/usr/bin/env bash
# Property-based run of the HTTP API from its own OpenAPI document by an independent client
# (schemathesis): `crm serve` over the sample leads, every operation fuzzed, and the run fails on
# any 5xx or on a response that breaks the document.
#
#   scripts/api-fuzz.sh PATH/TO/crm [ST]     (ST: the schemathesis `st`; default: on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
CRM="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
ST="${2:-st}"
WORK=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export CRM_STORE="$WORK/crm.db" CRM_JWT_SECRET="fuzz-$(date +%s%N)-secret" HOME="$WORK/home" XDG_DATA_HOME="$WORK/data"
"$CRM" leads import examples/leads.csv --default-region GB -q >/dev/null || [ $? -eq 1 ]
"$CRM" --json serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 50); do grep -q listen "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$WORK/serve.out")
TOKEN=$("$CRM" auth token --user fuzz --ttl 1h)
(cd "$WORK" && "$ST" run "http://$ADDR/openapi.json" -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance -n "${EXAMPLES:-20}" --seed 1)
