/**
 * Replay safety: histories recorded from earlier workflow code (test/histories/, made by
 * scripts/record-histories.ts) replay against today's code without a non-determinism error, so
 * claims and fills that are running during a deploy finish on the new workers. A change that
 * would break them must be guarded with patched().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { workflowBundle } from './support/pool';

const DIR = resolve(__dirname, 'histories');

test('recorded histories replay on the current workflow code', async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 8, `expected the recorded histories, found ${files.length}`);
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: historyFromJSON(JSON.parse(readFileSync(`${DIR}/${f}`, 'utf8'))),
  }));
  const failures: string[] = [];
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle(), replayName: 'replay-test' },
    histories,
  )) {
    if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
  }
  assert.deepEqual(failures, []);
});
