/**
 * The worker's workflow code. `npm run build` bundles the workflows once (webpack, with the
 * SDK's bundleWorkflowCode) beside the compiled worker, so a production start loads that file
 * instead of compiling and bundling the sources; from source (tsx) the worker bundles them at
 * start. Workflow interceptors must be inside a prebuilt bundle, so tracing has its own.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** File names in the build's root directory (dist/). */
export const BUNDLE_FILES = {
  plain: 'workflows-bundle.js',
  tracing: 'workflows-bundle-tracing.js',
} as const;

/** The SDK's workflow interceptors for traces (lib/temporal/tracing.ts), for the tracing bundle. */
export const TRACING_WORKFLOW_MODULES = [
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors'),
];

export type WorkflowCode =
  | { workflowBundle: { codePath: string }; workflowsPath?: undefined }
  | { workflowsPath: string; workflowBundle?: undefined };

/**
 * The prebuilt bundle in `buildDir` when there is one, else the sources at `workflowsPath`.
 * `tracing`: the bundle with the tracing interceptors.
 */
export function workflowCode(
  buildDir: string,
  workflowsPath: string,
  tracing: boolean,
): WorkflowCode {
  const codePath = resolve(buildDir, tracing ? BUNDLE_FILES.tracing : BUNDLE_FILES.plain);
  return existsSync(codePath) ? { workflowBundle: { codePath } } : { workflowsPath };
}
