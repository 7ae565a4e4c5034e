/**
 * What workflow unit tests share: the workflow bundle, and a local Temporal test server run from
 * the installed `temporal` binary (nothing is downloaded here). Not a test file itself: the unit
 * run picks up `*.test.ts` only.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  type WorkflowBundle,
} from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/client';
import type { Activities } from '../../activities';

const TEMPORAL = process.env.TEMPORAL_BIN ?? resolve(__dirname, '../../.stack/venv/bin/temporal');

let bundle: Promise<WorkflowBundle> | undefined;

/** The workflow code as the worker loads it (bundled once per test process). */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('WARN'),
  });
  return bundle;
}

/** A local test server with an in-memory store; `teardown()` it when done. */
export async function localTemporal(): Promise<TestWorkflowEnvironment> {
  if (!existsSync(TEMPORAL))
    throw new Error(
      `no temporal binary at ${TEMPORAL}: run npm run stack:up (or set TEMPORAL_BIN)`,
    );
  Runtime.install({ logger: new DefaultLogger('WARN') });
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: TEMPORAL }, ip: '127.0.0.1' },
  });
}

export type Calls = { name: keyof Activities; input: unknown }[];

type Answers = Partial<Record<keyof Activities, (input: never) => unknown>>;

/**
 * Activities that answer as a test wants, each call recorded; any other activity the workflow
 * calls fails the run (non-retryable), so an unexpected step shows as a failed workflow.
 */
export function mockActivities(names: (keyof Activities)[], answers: Answers, calls: Calls) {
  const fail = (name: string) => () => {
    throw ApplicationFailure.nonRetryable(`unexpected call of ${name}`, 'Unexpected');
  };
  return Object.fromEntries(
    names.map((name) => [
      name,
      async (input: never) => {
        calls.push({ name, input });
        return (answers[name] ?? fail(name))(input);
      },
    ]),
  );
}
