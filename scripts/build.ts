/**
 * `npm run build [-- --out <dir>]`: the production output, run with plain `node` (no tsx, no
 * dev dependencies): the TypeScript compiled (tsconfig.build.json), the files the code reads
 * beside itself (package.json, migrations/, the dashboard page), and the workflows bundled once
 * (lib/temporal/workflow-bundle.ts). Default directory: dist/.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { BUNDLE_FILES, TRACING_WORKFLOW_MODULES } from '../lib/temporal/workflow-bundle';

const ROOT = resolve(__dirname, '..');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  const out = resolve(values.out);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out],
    { cwd: ROOT, stdio: 'inherit' },
  );
  // Read at run time relative to the compiled code (__dirname): keep the source tree's layout.
  cpSync(resolve(ROOT, 'package.json'), resolve(out, 'package.json'));
  cpSync(resolve(ROOT, 'migrations'), resolve(out, 'migrations'), { recursive: true });
  cpSync(resolve(ROOT, 'api/dashboard.html'), resolve(out, 'api/dashboard.html'));
  const workflowsPath = resolve(ROOT, 'workflows');
  for (const [file, interceptors] of [
    [BUNDLE_FILES.plain, []],
    [BUNDLE_FILES.tracing, TRACING_WORKFLOW_MODULES],
  ] as const) {
    const { code } = await bundleWorkflowCode({
      workflowsPath,
      workflowInterceptorModules: [...interceptors],
      logger: new DefaultLogger('WARN'),
    });
    writeFileSync(resolve(out, file), code);
  }
  console.log(`built ${out}`);
}

main().catch((err) => {
  console.error(`build failed: ${(err as Error).message}`);
  process.exit(1);
});
