#!/usr/bin/env bash
# `npm test` from a fresh clone: installs the node dependencies if they are missing, brings the
# local stack up if it is not (idempotent: what runs is left running), then typecheck, lint, the
# claim and fill suites once with no workflow cache (scripts/test-nocache.sh), and one run of
# node's test runner over the unit tests (seconds, no stack) and the stack tests, so that its
# summary is the last thing printed. Exit status: that run's, else the no-cache run's.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/tsx ]] || npm install --no-audit --no-fund
bash scripts/stack.sh up
npx tsc --noEmit
npx eslint .
npx prettier --check .
nocache=0
bash scripts/test-nocache.sh || nocache=$?
((nocache == 0)) || echo "npm test: the no-cache run above failed (exit $nocache); the main run follows" >&2
node --import tsx --test --test-concurrency=1 --test-timeout=600000 test/unit/*.test.ts test/*.test.ts
exit "$nocache"
