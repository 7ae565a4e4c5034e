#!/usr/bin/env bash
# `npm run demo`: install what is missing, start the stack, the worker and the API, run the demo
# (scripts/demo.ts: claims, then VMs booting in each zone through the stack's Nova), then stop the
# worker and the API. The stack stays up so the Web UI can show every claim's history;
# `npm run stack:down` stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
export STACK_DIR

[[ -d node_modules/@temporalio/worker ]] || npm install --no-audit --no-fund
bash scripts/stack.sh up

# A small pool so the demo shows both outcomes quickly.
export POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES=sas
export POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE="Debian8 64bit"
export POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS="Centos7.3 64bit"
export POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE=4
export POOL__VOLUMES_BACKUP__BACKUP_NUMS_LESS=1
export POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND=0.5
export POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND=0.5
# Both zones of the stack: the demo boots a VM in each from a claimed system disk.
export POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES=az-1,az-2
# The slow create from a snapshot (Ceph's flatten) of the comparison without the pool, seconds.
export DEMO_CREATE_DELAY_SECONDS="${DEMO_CREATE_DELAY_SECONDS:-20}"
export LOG_LEVEL=warn

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # demo.ts slows Cinder's creates for its comparison and restores them; so does this, whatever
  # happened to it (the stack is shared).
  [[ -d "$STACK_DIR/cinder" ]] && echo 0 >"$STACK_DIR/cinder/create-delay-seconds"
  return 0
}
trap cleanup EXIT

echo "[demo] starting the worker and the API (logs in $STACK_DIR/logs/)"
node --import tsx workers/main.ts >"$STACK_DIR/logs/demo-worker.log" 2>&1 &
pids+=($!)
node --import tsx api/main.ts >"$STACK_DIR/logs/demo-api.log" 2>&1 &
pids+=($!)
port=$(npx --no-install tsx -e "import {loadConfig} from './lib/config/load'; console.log(loadConfig().api.port)")
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "[demo] API not ready, see $STACK_DIR/logs/demo-api.log"; exit 1; }
sleep 3 # the worker registers the schedules at start
npx --no-install tsx scripts/demo.ts
echo "[demo] done; worker and API stopped; the stack is still up (npm run stack:down to stop it)"
