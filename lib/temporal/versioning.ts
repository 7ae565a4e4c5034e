/**
 * Worker Versioning, pinned: the worker polls as one version (deployment name + build id) of a
 * Worker Deployment, and a workflow runs to its end on the version it started on. A claim or a
 * fill started before a deploy never meets the new code, so workflow changes need no `patched()`
 * (docs/upgrading.md).
 *
 * A versioned worker gets no task until its version is the deployment's current (or ramping)
 * one: the operator's upgrade step makes it so, or, with `[temporal] set_current_on_start`, the
 * worker itself once the server has seen it poll (the local stack, the tests).
 */
import { hostname } from 'node:os';
import type { WorkflowService } from '@temporalio/client';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import { ConfigError, type AppConfig } from '../config/load';

/** The worker's version, or a clear refusal when it has no build id. */
export function workerVersion(config: AppConfig): { deploymentName: string; buildId: string } {
  const { deploymentName, buildId } = config.temporal;
  if (!buildId)
    throw new ConfigError(
      '[temporal] build_id is not set and there is no git checkout to derive it from: set WARMPOOL_BUILD_ID when the image is built (docs/upgrading.md), or POOL__TEMPORAL__BUILD_ID',
    );
  return { deploymentName, buildId };
}

/** The worker's `workerDeploymentOptions`: versioned, every workflow pinned by default. */
export function deploymentOptions(config: AppConfig): WorkerDeploymentOptions {
  return {
    version: workerVersion(config),
    useWorkerVersioning: true,
    defaultVersioningBehavior: 'PINNED',
  };
}

/** gRPC status codes the promotion waits out: the version is not registered yet, or a race. */
const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;
const ABORTED = 10;

/**
 * Makes the worker's version the deployment's current one; resolves with the build id that was
 * current before (null: none, or unversioned workers), or this one's if it was current already.
 * The server knows a version only once one of its workers has polled, so this waits for that,
 * up to `timeoutMs`, which passes only if the worker never polls or the server refuses to add a
 * deployment (past `matching.maxDeployments`) or a version (past
 * `matching.maxVersionsInDeployment`, when every older version still has pollers).
 * `signal`: stop waiting (the worker stopped first).
 */
export async function setCurrentVersion(
  service: WorkflowService,
  config: AppConfig,
  opts: { timeoutMs?: number; identity?: string; signal?: AbortSignal } = {},
): Promise<string | null> {
  const { deploymentName, buildId } = workerVersion(config);
  const namespace = config.temporal.namespace;
  const identity = opts.identity ?? `${process.pid}@${hostname()}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError = '';
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    try {
      const { workerDeploymentInfo, conflictToken } = await service.describeWorkerDeployment({
        namespace,
        deploymentName,
      });
      const current = workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId;
      if (current === buildId) return buildId;
      await service.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName,
        buildId,
        conflictToken,
        identity,
      });
      return current || null;
    } catch (err) {
      // A gRPC status code, from a Client's connection or a worker's NativeConnection alike.
      const code = (err as { code?: unknown }).code;
      if (code !== NOT_FOUND && code !== FAILED_PRECONDITION && code !== ABORTED) throw err;
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(
        `could not make ${deploymentName}.${buildId} the current version of Worker Deployment ${deploymentName} (last answer: ${lastError}). The server knows a version once one of its workers polled; it refuses new deployments and versions past matching.maxDeployments and matching.maxVersionsInDeployment (docs/upgrading.md)`,
      );
    await new Promise((r) => setTimeout(r, pause));
    opts.signal?.throwIfAborted();
  }
}
