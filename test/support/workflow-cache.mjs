/**
 * Preloaded by `npm run test:nocache` (node --import): POOL__TEMPORAL__MAX_CACHED_WORKFLOWS also
 * for the workers a test builds itself (the workflow unit tests' own Worker.create), not only for
 * those built from the configuration (startWorker, spawnWorker, workers/main.ts). At 0 every
 * activation replays the workflow from its history: a workflow that does not replay the same
 * commands fails there (TEMPORAL-NOTES "Replay and deploys").
 *
 * Plain JavaScript: node hands --import to the SDK's workflow threads too, where no TypeScript
 * loader runs; there it does nothing.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const raw = process.env.POOL__TEMPORAL__MAX_CACHED_WORKFLOWS;
if (isMainThread && raw !== undefined && raw !== '') {
  const maxCachedWorkflows = Number(raw);
  if (!Number.isInteger(maxCachedWorkflows) || maxCachedWorkflows < 0 || maxCachedWorkflows === 1)
    throw new Error(`POOL__TEMPORAL__MAX_CACHED_WORKFLOWS = ${raw}: expected 0 or at least 2`);
  // The same module instance the tests require (CommonJS).
  const { Worker } = createRequire(import.meta.url)('@temporalio/worker');
  const create = Worker.create.bind(Worker);
  Worker.create = (options) => create({ ...options, maxCachedWorkflows });
}
