/**
 * Replay safety: histories recorded from the workflow code (test/histories/, made by
 * scripts/record-histories.ts, some under load: a reservation that outlived its workflow task,
 * claims of a burst) replay without a non-determinism error. A workflow is replayed far more
 * often than at a deploy: after a worker restart, a cache eviction, a query of a workflow not in
 * the cache. (Across deploys, running workflows are pinned to their build: docs/upgrading.md.)
 * Needs no server: only the workflow bundle.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { workflowBundle } from './workflow-harness';

const DIR = resolve(__dirname, '../histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('recorded histories replay on the current workflow code', () => {
  test('the recorded histories are there', () => {
    assert.ok(files.length >= 8, `expected the recorded histories, found ${files.length}`);
  });

  // One test per history: a failure names the workflow path it breaks.
  for (const f of files) {
    const workflowId = f.replace(/\.json$/, '');
    test(workflowId, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(`${DIR}/${f}`, 'utf8')));
      await Worker.runReplayHistory(
        { workflowBundle: await workflowBundle(), replayName: 'replay-test' },
        history,
        workflowId,
      );
    });
  }
});
