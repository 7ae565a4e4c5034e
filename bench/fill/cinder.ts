/**
 * The Cinder side of bench:fill (and bench:boot): the bare peer of a fill (workers that each
 * create a volume and poll it until available, then the next), deleting what a step made and
 * waiting until Cinder is done deleting, room in a project's quota for the run, and a check that
 * the create delay this process sets is the one the stack's fake driver reads.
 */
import { existsSync } from 'node:fs';
import { CinderError, type CinderClient } from '../../lib/cinder';
import { STACK_DIR } from '../../test/support/pool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The stack's state directory must be the running stack's: setCreateDelay writes
 * `${STACK_DIR}/cinder/create-delay-seconds`, which the fake driver reads, and stack-cpus pins
 * the processes `scripts/stack.sh pids` finds there. A worktree without its own `.stack` runs the
 * benches with STACK_DIR set to the stack's (e.g. STACK_DIR=/work/main/.stack).
 */
export function checkStackDir(): void {
  if (!existsSync(`${STACK_DIR}/run/cinder-volume.pid`))
    throw new Error(
      `${STACK_DIR} is not the running stack's state (no run/cinder-volume.pid): ` +
        'set STACK_DIR to it, e.g. STACK_DIR=/work/main/.stack, or the create delay goes nowhere',
    );
}

/** What one bare volume is made from. */
export interface BareItem {
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
  /** The snapshot's zone, asked of Cinder as the fill asks it ('' : none named). */
  zone: string;
}

export interface BareRun {
  wallMs: number;
  /** Every volume made (available or not), to delete. */
  ids: string[];
  available: number;
  /** Ended in a status other than available (error…). */
  failed: string[];
  /** Polls Cinder answered with a transient error (5xx, unreachable): polled again. */
  pollErrors: number;
}

/**
 * `concurrency` workers, each: create a volume from its item's snapshot in `zone`, GET it until it
 * leaves `creating` (at once, then every `pollMs`, as a pool volume's watch looks first and then
 * every poll interval), then the next item. The volumes are the admin project's, named
 * `${prefix}-<i>`, each in its item's zone. A poll Cinder answers with a transient error is
 * counted and made again at the next interval (as a pool volume's watch is retried).
 */
export async function bareLoop(opts: {
  cinder: CinderClient;
  items: BareItem[];
  concurrency: number;
  pollMs: number;
  prefix: string;
}): Promise<BareRun> {
  const { cinder, items } = opts;
  const ids: string[] = [];
  const failed: string[] = [];
  let available = 0;
  let pollErrors = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const item = items[i] as BareItem;
      const v = await cinder.createVolume({
        name: `${opts.prefix}-${i}`,
        size: item.sizeGb,
        snapshotId: item.snapshotId,
        volumeType: item.volumeType,
        availabilityZone: item.zone || undefined,
      });
      ids.push(v.id);
      for (;;) {
        const got = await cinder.getVolume(v.id).catch((err: unknown) => {
          if (!(err instanceof CinderError && err.retryable)) throw err;
          pollErrors++;
          return null;
        });
        if (!got) {
          await sleep(opts.pollMs);
          continue;
        }
        if (got.status === 'available') {
          available++;
          break;
        }
        if (got.status !== 'creating' && got.status !== 'downloading') {
          failed.push(`${got.name}: ${got.status}`);
          break;
        }
        await sleep(opts.pollMs);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return { wallMs: performance.now() - started, ids, available, failed, pollErrors };
}

/** Deletes volumes, `concurrency` at a time; one already gone is fine. */
export async function deleteVolumes(
  cinder: CinderClient,
  ids: string[],
  concurrency = 8,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < ids.length; i = next++)
      await cinder.deleteVolume(ids[i] as string).catch(() => undefined);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/**
 * Waits until the client's project has no volume `deleting` (Cinder's deletes of the step before
 * would otherwise run into the next measured step); false when `timeoutMs` passed first.
 */
export async function waitDeleted(cinder: CinderClient, timeoutMs = 180_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await cinder.listVolumes({ status: 'deleting' })).length === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(1000);
  }
}

/**
 * Room in `projectId`'s Cinder quota for `volumes` more volumes of `gigabytesEach` (beside what it
 * holds: in use + reserved), per volume type too when those are limited. Raises what is short and
 * returns what it did and how to put the limits back (nothing to undo when nothing was raised).
 */
export async function ensureQuotaRoom(
  cinder: CinderClient,
  projectId: string,
  volumes: number,
  gigabytesEach: number,
  types: string[] = [],
): Promise<{ said: string; restore: () => Promise<void> }> {
  const usage = await cinder.getQuotaUsage(projectId);
  const wanted: [string, number][] = [
    ['volumes', volumes],
    ['gigabytes', volumes * gigabytesEach],
    ...types.flatMap((t): [string, number][] => [
      [`volumes_${t}`, volumes],
      [`gigabytes_${t}`, volumes * gigabytesEach],
    ]),
  ];
  const raised: Record<string, number> = {};
  const before: Record<string, number> = {};
  const notes: string[] = [];
  for (const [key, more] of wanted) {
    const u = usage[key];
    if (!u || u.limit < 0) continue;
    const need = u.inUse + u.reserved + more;
    if (u.limit >= need) {
      if (key === 'volumes' || key === 'gigabytes')
        notes.push(`${key} ${u.limit} (in use ${u.inUse}): room for ${more}`);
      continue;
    }
    before[key] = u.limit;
    raised[key] = need;
    notes.push(`${key} ${u.limit} → ${need} (in use ${u.inUse} + ${more})`);
  }
  if (Object.keys(raised).length) await cinder.updateQuota(projectId, raised);
  return {
    said: notes.join(', '),
    restore: async () => {
      if (Object.keys(before).length) await cinder.updateQuota(projectId, before);
    },
  };
}
