/**
 * API keys that ship with the project (config/pool.ini, .env.example, the README, the compose
 * file's documentation): anybody who read them could call an API that starts with one. Only the
 * local stack may, and says so with `[api] allow_example_keys = true`.
 */
import { ConfigError, type AppConfig } from './load';

export const EXAMPLE_API_KEYS: readonly string[] = ['dev-key-change-me', 'change-me'];

/** Refuses API keys that are empty or shipped as examples (unless the stack's dev mode allows them). */
export function checkApiKeys(api: AppConfig['api']): void {
  if (api.apiKeys.length === 0)
    throw new ConfigError('[api] api_keys (or API_KEYS) is empty: nobody could call the API');
  const examples = api.apiKeys.filter((k) => EXAMPLE_API_KEYS.includes(k)).length;
  if (examples > 0 && !api.allowExampleKeys)
    throw new ConfigError(
      `[api] api_keys (or API_KEYS) holds ${examples} of the example keys shipped with the project (config/pool.ini, .env.example): set your own (e.g. openssl rand -hex 32). Only a local development stack may run with them: [api] allow_example_keys = true (POOL__API__ALLOW_EXAMPLE_KEYS=true)`,
    );
}
