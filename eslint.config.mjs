// Lint: typescript-eslint's recommended rules everywhere; workflow code must stay deterministic,
// so Node built-ins (and anything doing I/O) are forbidden under workflows/ and contracts/ (which workflows import).
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/', '.stack/', 'coverage/'] },
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
            ...nodeBuiltins.map((name) => ({
              name,
              message: 'Workflows must be deterministic: no Node built-ins.',
            })),
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
);
