#!/usr/bin/env bash
# `npm test` from a fresh clone: installs the node dependencies if they are missing, brings the
# local stack up if it is not (idempotent: what runs is left running), then typecheck, lint, and
# one run of node's test runner over the unit tests (seconds, no stack) and the stack tests, so
# its summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/tsx ]] || npm install --no-audit --no-fund
bash scripts/stack.sh up
npx tsc --noEmit
npx eslint .
npx prettier --check .
node --import tsx --test --test-concurrency=1 --test-timeout=600000 test/unit/*.test.ts test/*.test.ts
