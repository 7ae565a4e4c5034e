// Lint: typescript-eslint's recommended rules everywhere; workflow code must stay deterministic,
// so Node built-ins (and anything doing I/O) are forbidden under workflows/ and contracts/ (which workflows import).
// Contracts are the bottom every other folder imports: they import no project code at all;
// lib/ imports neither activities nor workflows.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
/** What contracts/ and lib/ must not import: the floors above them (relative to the file). */
const upperFloors = ['../activities', '../activities/**', '../workflows', '../workflows/**'];

const noBuiltins = nodeBuiltins.map((name) => ({
  name,
  message: 'Workflows must be deterministic: no Node built-ins.',
}));

export default tseslint.config(
  { ignores: ['node_modules/', '.stack/', 'coverage/', 'dist/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts', 'contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...noBuiltins,
            { name: 'axios', message: 'Workflows do no I/O: call an activity.' },
            { name: 'pg', message: 'Workflows do no I/O: call an activity.' },
          ],
          patterns: [
            {
              group: [
                '../activities',
                '../activities/**',
                '../lib/cinder',
                '../lib/cinder/**',
                '../lib/pool-state/db',
                '../lib/pool-state/repository',
                '../lib/config/**',
              ],
              allowTypeImports: true,
              message: 'Import activities (and clients) as types only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: noBuiltins,
          patterns: [
            {
              group: [...upperFloors, '../lib/**'],
              message: 'Contracts import no project code: move the type into the contract.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: upperFloors.flatMap((p) => [p, `../${p}`]),
              message:
                'lib/ is below activities and workflows: name a workflow by its type (contracts).',
            },
          ],
        },
      ],
    },
  },
);
