#!/usr/bin/env bash
# Loads the dashboard of a running 3-node cluster in headless Chromium (Debian's
# `chromium`), checks that every node appears, kills one node and checks that the page
# shows it unreachable; saves a screenshot to docs/dashboard.png.
#
#   cargo build -p erlmcp-flow-cli && bash crates/cli/tests/observability/dashboard_check.sh
#
# FLOW_BIN picks the `flow` binary (default target/debug/flow); CHROMIUM the browser.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
flow=${FLOW_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/flow}
chromium=${CHROMIUM:-chromium}
command -v "$chromium" >/dev/null || { echo "FAIL: $chromium not found (apt-get install -y chromium)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # name out [args...]
  local name=$1 out=$2; shift 2
  "$flow" node --name "$name" --listen 127.0.0.1:0 --agents 2 "$@" > "$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do grep -q READY "$out" && return 0; sleep 0.1; done
  echo "FAIL: $name did not start"; exit 1
}
field() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -1 | cut -d'"' -f4; }

start dash-a "$work/a" --http-listen 127.0.0.1:0
seed=$(field "$work/a" listen); http=$(field "$work/a" http)
start dash-b "$work/b" --join "$seed"
start dash-c "$work/c" --join "$seed"
kill_c=${pids[2]}

dom() {
  "$chromium" --headless --no-sandbox --disable-gpu --virtual-time-budget=4000 --dump-dom "http://$http/" 2>/dev/null
}
deadline=$((SECONDS + 30))
until dom > "$work/dom1" && grep -q 'data-nodes="dash-a,dash-b,dash-c"\|data-nodes="dash-a,dash-c,dash-b"' "$work/dom1"; do
  [ $SECONDS -lt $deadline ] || { echo "FAIL: the page never listed all three nodes"; grep -o 'data-nodes="[^"]*"' "$work/dom1" || true; exit 1; }
  sleep 1
done
echo "ok: the page lists dash-a, dash-b, dash-c"

kill -9 "$kill_c"
deadline=$((SECONDS + 30))
until dom > "$work/dom2" && grep -q '<td>dash-c</td><td><span class="bad">NO</span>' "$work/dom2"; do
  [ $SECONDS -lt $deadline ] || { echo "FAIL: dash-c never turned unreachable on the page"; exit 1; }
  sleep 1
done
echo "ok: the page shows dash-c unreachable after kill -9"
"$chromium" --headless --no-sandbox --disable-gpu --virtual-time-budget=4000 --window-size=1200,900 \
  --screenshot="$root/docs/dashboard.png" "http://$http/" 2>/dev/null || true
echo "1 passed, 0 failed"
