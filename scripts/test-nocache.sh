#!/usr/bin/env bash
# `npm run test:nocache`: the claim and fill suites (the workflow unit tests with mocked
# activities, test/unit/*workflow*, and the stack suites claim, claim-crash and fill) against
# workers that cache no workflow, POOL__TEMPORAL__MAX_CACHED_WORKFLOWS=0: every workflow task
# first replays the history, so a workflow that would take another path on replay fails here,
# not after a worker restart, a cache eviction or a query. The stack must be up (npm run
# stack:up); the stack suites empty the pool. Extra arguments go to node --test.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
suites=(test/unit/*workflow*.test.ts test/claim.test.ts test/claim-crash.test.ts test/fill.test.ts)
export POOL__TEMPORAL__MAX_CACHED_WORKFLOWS=0
# The preload gives the unit tests' own workers the same setting (they are not built from the
# configuration); startWorker and the spawned workers read it from the configuration.
exec node --import tsx --import ./test/support/workflow-cache.mjs --test --test-concurrency=1 \
  --test-timeout=600000 "$@" "${suites[@]}"
