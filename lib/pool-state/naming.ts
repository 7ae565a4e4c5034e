/**
 * How pool volumes look in Cinder: a recognisable name and metadata tags saying they are ours,
 * for which OS and type, from which snapshot. Reconciliation finds leaks by the pool tag; a claim
 * removes every tag when it hands a volume over.
 */
export const TAGS = {
  pool: 'warmpool-pool',
  os: 'warmpool-os',
  type: 'warmpool-type',
  snapshot: 'warmpool-snapshot',
  zone: 'warmpool-zone',
} as const;

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^-|-$/g, '');

/**
 * `<prefix>-<type>[-<zone>]-<os slug>-<id>`: `id` makes it unique and is the create's
 * idempotency key.
 */
export function poolVolumeName(
  prefix: string,
  type: string,
  os: string,
  id: string,
  zone?: string,
): string {
  return `${prefix}-${slug(type)}${zone ? `-${slug(zone)}` : ''}-${slug(os)}-${id}`;
}

export function poolTags(
  prefix: string,
  os: string,
  type: string,
  snapshotId: string,
  zone?: string,
): Record<string, string> {
  return {
    [TAGS.pool]: prefix,
    [TAGS.os]: os,
    [TAGS.type]: type,
    [TAGS.snapshot]: snapshotId,
    ...(zone ? { [TAGS.zone]: zone } : {}),
  };
}
