/**
 * What the claim's steps share: the admin and tenant clients of the current attempt, the name
 * lookup, transfers, and the one loop that waits for a volume's status.
 */
import { ApplicationFailure, log } from '@temporalio/activity';
import { CinderError, type CinderClient, type Volume } from '../../lib/cinder';
import { CLAIM_FAILURES, type ClaimTarget } from '../../contracts/claim';
import { cinderForAttempt } from '../guard';
import { pollVolume } from '../cinder/poll';
import type { Deps } from '../deps';

export const nonRetryable = (type: string, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/** The description of a volume made by plain creation: the claim's mark on what it owns. */
export const createdByClaim = (claimId: string) => `created by warm pool claim ${claimId}`;

/** The name of a claim's transfer (Cinder keeps 255 characters). */
export const transferName = (claimId: string) => `warm pool claim ${claimId}`.slice(0, 255);

/**
 * The zone a claim is served in: its own, else the configured default (a claim the API of the
 * previous build started, before it knew zones).
 */
export const claimZone = (config: Deps['config'], t: { zone?: string }) =>
  t.zone ?? config.pool.defaultZone;

/** A volume that stands for "this name already exists" (not a broken or leaving one). */
export const usable = (v: Volume) => !v.status.startsWith('error') && v.status !== 'deleting';

export type ClaimContext = ReturnType<typeof claimContext>;

export function claimContext({ config, cinder }: Pick<Deps, 'config' | 'cinder'>) {
  /** This attempt's admin client: every call stops when the attempt is cancelled. */
  const admin = () => cinderForAttempt(cinder);
  const tenant = (t: Pick<ClaimTarget, 'projectId' | 'userId'>) =>
    admin().asProject(t.projectId, t.userId);

  /** A usable volume of that name already in the tenant's project (the idempotent lookup). */
  async function findTenantVolume(t: ClaimTarget): Promise<Volume | null> {
    return (await tenant(t).listVolumes({ name: t.name })).find(usable) ?? null;
  }

  /** The volume, if it is in the tenant's project. */
  async function inTenant(t: ClaimTarget, volumeId: string): Promise<Volume | null> {
    const v = await admin().findVolume(volumeId);
    return v && v.projectId === t.projectId ? v : null;
  }

  /** Deletes one transfer this attempt made; a failure is only logged (its caller moves on). */
  async function dropTransfer(id: string): Promise<void> {
    await admin()
      .deleteTransfer(id)
      .catch((e: Error) => log.warn(`could not delete transfer ${id}: ${e.message}`));
  }

  /**
   * Deletes a volume's pending transfers (their auth keys died with the attempts that made
   * them). `licence` is asked after the listing, right before the deletes: false (the fence was
   * lost) → nothing is deleted, and the answer is false.
   */
  async function dropPendingTransfers(
    volumeId: string,
    licence: () => Promise<boolean>,
  ): Promise<boolean> {
    const client = admin();
    const pending = await client.listTransfers({ volumeId });
    if (pending.length === 0) return true;
    if (!(await licence())) return false;
    for (const stale of pending) {
      log.info(`deleting pending transfer ${stale.id} of volume ${volumeId}`);
      await client.deleteTransfer(stale.id).catch((e: Error) => {
        if (!(e instanceof CinderError && e.status === 404)) throw e;
      });
    }
    return true;
  }

  /**
   * Waits (heartbeating) until the volume reaches one of `want`, fails (`VolumeFailed`) or the
   * deadline passes (`VolumeTimeout`).
   */
  async function waitStatus(
    client: CinderClient,
    id: string,
    want: string[],
    timeoutMs: number,
  ): Promise<Volume> {
    const deadline = Date.now() + timeoutMs;
    const seconds = Math.round(timeoutMs / 1000);
    const timedOut = (message: string) => nonRetryable(CLAIM_FAILURES.volumeTimeout, message);
    return pollVolume(client, id, {
      pollMs: Math.min(1000, config.pool.pollIntervalSeconds * 1000),
      creatingUntil: () => deadline,
      look: async () => {
        try {
          return await client.getVolume(id);
        } catch (err) {
          // Past the deadline, Cinder not answering ends the wait too (a retry would start over).
          if (Date.now() > deadline && !(err instanceof CinderError && err.status === 404))
            throw timedOut(
              `volume ${id} not confirmed available within ${seconds} s: ${(err as Error).message}`,
            );
          throw err;
        }
      },
      decide: (v) => {
        if (!v) return undefined; // (getVolume throws on a missing volume)
        if (want.includes(v.status)) return v;
        if (v.status.startsWith('error'))
          throw nonRetryable(CLAIM_FAILURES.volumeFailed, `volume ${id} went to ${v.status}`);
        if (Date.now() > deadline)
          throw timedOut(`volume ${id} still ${v.status} after ${seconds} s`);
        return undefined;
      },
    });
  }

  return {
    config,
    admin,
    tenant,
    findTenantVolume,
    inTenant,
    dropTransfer,
    dropPendingTransfers,
    waitStatus,
  };
}
