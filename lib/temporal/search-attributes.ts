/**
 * The search attributes every claim sets (project, OS, type, kind, outcome, zone). A workflow that
 * upserts an attribute the namespace does not know fails its task on every attempt, so the worker
 * makes sure they exist on whatever server it meets (the dev server, a compose deployment, a
 * self-hosted cluster) before it polls. Temporal Cloud registers them through its own API: there
 * the call is refused, which is reported, not fatal.
 */
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';

const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;

export const POOL_SEARCH_ATTRIBUTES = [
  'PoolProject',
  'PoolOs',
  'PoolVolumeType',
  'PoolOutcome',
  'PoolKind',
  'PoolZone',
] as const;

/** Adds the missing ones; returns their names (empty when all were there). */
export async function ensureSearchAttributes(client: Client, namespace: string): Promise<string[]> {
  const have = await client.connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set([
    ...Object.keys(have.customAttributes ?? {}),
    ...Object.keys(have.systemAttributes ?? {}),
  ]);
  const missing = POOL_SEARCH_ATTRIBUTES.filter((a) => !known.has(a));
  if (missing.length === 0) return [];
  try {
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((a) => [a, KEYWORD])),
    });
  } catch (err) {
    // Two workers starting at once: the loser finds them added (ALREADY_EXISTS, code 6).
    if ((err as { code?: number }).code !== 6) throw err;
  }
  return missing;
}
